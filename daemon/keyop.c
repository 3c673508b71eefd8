/* keyop.c: a TLS key that lives in the token, used by a front that holds
 * no PKCS#11 handle (relayd's ca process, smaller). The front's key is
 * the certificate's public key with a private-key method that sends the
 * digest (EC) or the block and its padding (RSA) to the signer over a
 * socketpair of its own, and waits for the signature: one handshake
 * signature at a time, bounded by KEYOP_TIMEOUT_MS. The signer makes it
 * with the key in the token (SIGNER_TLS_SIGN on a worker). */
#include "config.h"

/* EC_KEY_METHOD and RSA_METHOD are how a key whose private half lives
 * elsewhere plugs into libssl (libp11 does the same). */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "hsmcad.h"
#include "ipc.h"
#include "log.h"

#define KEYOP_TIMEOUT_MS	(2 * HSM_TIMEOUT_MS)
#define KEYOP_INPUT_MAX		1024	/* a digest, or one RSA-8192 block */
#define KEYOP_SIG_MAX		1100

/* ---- the front ---- */

static int keyop_fd = -1;

/* Send the input, wait for the signature: its length, or -1. */
static int
keyop_call(int padding, const unsigned char *in, size_t inlen,
    unsigned char *sig, size_t sigmax)
{
	struct ipc_buf b;
	struct ipc_rd r;
	struct pollfd pfd;
	unsigned char buf[KEYOP_SIG_MAX + 64];
	const unsigned char *p;
	char why[128];
	size_t len, n;
	uint32_t status;

	if (keyop_fd == -1 || inlen > KEYOP_INPUT_MAX)
		return -1;
	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, (uint32_t)padding);
	ipcb_bytes(&b, in, inlen);
	if (ipc_send_one(keyop_fd, IPC_JOB, &b) != 0) {
		ipcb_free(&b);
		return -1;
	}
	ipcb_free(&b);
	pfd.fd = keyop_fd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, KEYOP_TIMEOUT_MS) != 1) {
		/* A late answer would pair with the next question. */
		fatalx("TLS key: the signer did not sign within %d ms",
		    KEYOP_TIMEOUT_MS);
	}
	if (ipc_recv_one(keyop_fd, IPC_ANSWER, buf, sizeof(buf), &len, why,
	    sizeof(why)) != 0)
		fatalx("TLS key: %s", why);
	ipcr_init(&r, buf, len);
	status = ipcr_u32(&r);
	p = ipcr_view(&r, &n, KEYOP_SIG_MAX);
	if (ipcr_end(&r) != 0)
		fatalx("TLS key: an answer that does not parse");
	if (status != 200 || n == 0 || n > sigmax) {
		log_warnx("TLS key: the signer could not sign a handshake");
		return -1;
	}
	memcpy(sig, p, n);
	return (int)n;
}

static int
ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
    unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *rp,
    EC_KEY *eckey)
{
	int n;

	if (dlen < 0 || (n = keyop_call(0, dgst, (size_t)dlen, sig,
	    (size_t)ECDSA_size(eckey))) < 0)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

static ECDSA_SIG *
ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
    const BIGNUM *rp, EC_KEY *eckey)
{
	unsigned char sig[KEYOP_SIG_MAX];
	const unsigned char *p = sig;
	int n;

	if (dlen < 0 || (n = keyop_call(0, dgst, (size_t)dlen, sig,
	    sizeof(sig))) < 0)
		return NULL;
	return d2i_ECDSA_SIG(NULL, &p, n);
}

static int
rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to,
    RSA *rsa, int padding)
{
	if (flen < 0)
		return -1;
	return keyop_call(padding, from, (size_t)flen, to,
	    (size_t)RSA_size(rsa));
}

EVP_PKEY *
keyop_front_key(int keyfd, X509 *cert, struct hsmca_err *e)
{
	static EC_KEY_METHOD *ecm;
	static RSA_METHOD *rsam;
	EVP_PKEY *pub = X509_get0_pubkey(cert), *pk = NULL;
	EC_KEY *ec = NULL;
	RSA *rsa = NULL;
	int (*setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;

	keyop_fd = keyfd;
	if (pub == NULL || (pk = EVP_PKEY_new()) == NULL)
		goto fail;
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_EC:
		if (ecm == NULL) {
			if ((ecm = EC_KEY_METHOD_new(EC_KEY_get_default_method()))
			    == NULL)
				goto fail;
			EC_KEY_METHOD_get_sign(EC_KEY_get_default_method(), NULL,
			    &setup, NULL);
			EC_KEY_METHOD_set_sign(ecm, ec_sign, setup, ec_sign_sig);
		}
		if ((ec = EVP_PKEY_get1_EC_KEY(pub)) == NULL ||
		    !EC_KEY_set_method(ec, ecm) ||
		    !EVP_PKEY_assign_EC_KEY(pk, ec))
			goto fail;
		ec = NULL;
		break;
	case EVP_PKEY_RSA:
		if (rsam == NULL) {
			if ((rsam = RSA_meth_dup(RSA_get_default_method())) ==
			    NULL || !RSA_meth_set1_name(rsam, "hsmcad signer") ||
			    !RSA_meth_set_priv_enc(rsam, rsa_priv_enc))
				goto fail;
		}
		if ((rsa = EVP_PKEY_get1_RSA(pub)) == NULL ||
		    !RSA_set_method(rsa, rsam) ||
		    !EVP_PKEY_assign_RSA(pk, rsa))
			goto fail;
		rsa = NULL;
		break;
	default:
		err_set(e, HSMCA_ERR_CONFIG, "tls-key: only EC and RSA keys "
		    "in the token can serve TLS");
		EVP_PKEY_free(pk);
		return NULL;
	}
	return pk;
fail:
	EC_KEY_free(ec);
	RSA_free(rsa);
	EVP_PKEY_free(pk);
	err_set(e, HSMCA_ERR_INTERNAL, "tls-key: cannot set up the key");
	return NULL;
}

/* ---- the signer ---- */

struct keyop_server {
	struct signer	*signer;
	struct ipc	*ipc;
	uint64_t	 next_id;
};

/* The answer to a TLS key operation: its status and the signature. */
static void
keyop_pack(void *arg, struct ipc_buf *b)
{
	const struct signer_job *job = arg;

	ipcb_u32(b, (uint32_t)job->status);
	ipcb_bytes(b, job->status == 200 ? job->p7_der : NULL,
	    job->status == 200 ? job->p7_len : 0);
}

static void
keyop_done(struct signer_job *job, void *arg)
{
	struct keyop_server *ks = arg;

	ipc_send_packed(ks->ipc, IPC_ANSWER, job->ipc_id, keyop_pack, job,
	    "signer: cannot answer a TLS key operation");
	signer_job_free(job);
}

static void
keyop_msg(struct ipc *c, uint32_t type, uint64_t id, struct ipc_rd *r,
    void *arg)
{
	struct keyop_server *ks = arg;
	struct signer_job *job;
	uint32_t padding;

	if (type != IPC_JOB)
		fatalx("signer: unexpected message on the TLS key channel");
	if ((job = calloc(1, sizeof(*job))) == NULL)
		fatalx("signer: out of memory");
	padding = ipcr_u32(r);
	ipcr_bytes(r, &job->csr_der, &job->csr_len, KEYOP_INPUT_MAX);
	if (ipcr_end(r) != 0 || job->csr_len == 0 || padding > 64)
		fatalx("signer: a TLS key operation that does not parse");
	job->op = SIGNER_TLS_SIGN;
	job->id_nid = (int)padding;
	job->ipc_id = ++ks->next_id;
	job->done = keyop_done;
	job->arg = ks;
	signer_submit(ks->signer, job);
}

static void
keyop_end(struct ipc *c, const char *why, void *arg)
{
	/* The front is gone; its main channel ends this process. */
}

int
keyop_serve(struct event_base *base, struct signer *s, int keyfd,
    struct hsmca_err *e)
{
	struct keyop_server *ks;

	static struct keyop_server *server;	/* for the process's life */

	if (server != NULL)
		return err_set(e, HSMCA_ERR_INTERNAL, "keyop_serve twice");
	if ((server = ks = calloc(1, sizeof(*ks))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	ks->signer = s;
	if ((ks->ipc = ipc_new(base, keyfd, keyop_msg, keyop_end, ks)) == NULL) {
		free(ks);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	return 0;
}
