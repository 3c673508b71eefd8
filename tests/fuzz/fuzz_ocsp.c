/* fuzz_ocsp.c: an OCSP request as hsmcad answers it, the HSM replaced by
 * software keys: the GET form decoded (ocsp_get_request, daemon/ocsp.c)
 * or the POST body taken as is, answered from the pre-signed cache
 * (ocsp_answer, lib/ocsp.c), and on a miss looked up in an in-memory
 * table standing in for the store and signed (ocsp_presign or
 * ocsp_unknown), as the signer's ocsp_job_miss does.
 *
 * Input: "GET /ocsp/" and the URL-encoded base64 request, or the DER
 * request a POST carries.
 *
 * Fixture: generation 1 answers through a delegated responder, 2 with
 * its CA key; each has issued a valid and a revoked certificate, whose
 * responses are cached for SHA-1 and SHA-256 CertIDs.
 *
 * Invariants: every answer is a DER OCSPResponse; a cached answer is
 * successful and about the CertID asked for; a refusal is not
 * successful; a miss names a generation of the fixture and a CertID
 * hash hsmca answers. */
#include "config.h"

#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>

#include "hsmca/ocsp.h"
#include "hsmca/serial.h"
#include "hsmca/store.h"

#include "../../daemon/hsmcad.h"
#include "fuzz.h"
#include "../unit/testutil.h"

#define GET_PREFIX	"GET /ocsp/"
#define NGEN		2

static struct {
	time_t			 now;
	EVP_PKEY		*ca_key[NGEN], *resp_key;
	X509			*ca[NGEN], *resp;
	struct ocsp_signer	 signer[NGEN];
	struct ocsp_cache	*cache;
	struct store_cert	 certs[2 * NGEN];
} fx;

/* The generations' keys are fixed so that the seed corpus's requests
 * name them (make-corpus.sh reads them from here). Fuzzing fixtures,
 * never used anywhere else. */
static const char fx_key1[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHcCAQEEIM38btZVvVHPt0yr8xYgFkMbLdlu1XLGtKqQXo/97IFpoAoGCCqGSM49\n"
	"AwEHoUQDQgAEUNdtoIr28ScsWld+wvTTdPzathNQlH2WrjLQjW1bfpGKtyIsEsxU\n"
	"5af+KgnblM+1hovN3l5KEfrn6UWbXUsHOA==\n"
	"-----END EC PRIVATE KEY-----\n";
static const char fx_key2[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHcCAQEEILF58ZpUrQRrlDaZ5e3pKO2wvpbQLpvXjygGjyQ6N0h1oAoGCCqGSM49\n"
	"AwEHoUQDQgAEoynOylU1oLi/pLGrHD7GOXBoKu+Cg5/K+Cf0Xue9ZkiqjGQQcvSl\n"
	"AsKH17XfXQ0q3EsvL0BsEnmNmVupgcsvIg==\n"
	"-----END EC PRIVATE KEY-----\n";

static const char *const fx_serials[2 * NGEN] = {
	"4e1f0a99c2d3e4f5061728394a5b6c7d",	/* generation 1, valid */
	"01",					/* generation 1, revoked */
	"7fffffffffffffffffffffffffffffff",	/* generation 2, valid */
	"00ff",					/* generation 2, revoked */
};

static EVP_PKEY *
key_load(const char *pem)
{
	BIO *b;
	EVP_PKEY *k;

	if ((b = BIO_new_mem_buf(pem, -1)) == NULL ||
	    (k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL)
		abort();
	BIO_free(b);
	return k;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hsmca_err e;
	const EVP_MD *mds[2];
	unsigned char *der;
	size_t len;

	fx.now = time(NULL);
	for (int g = 0; g < NGEN; g++) {
		fx.ca_key[g] = key_load(g == 0 ? fx_key1 : fx_key2);
		fx.ca[g] = tu_make_ca(fx.ca_key[g], g == 0 ?
		    "CN=Fuzz OCSP CA 1,O=hsmca" : "CN=Fuzz OCSP CA 2,O=hsmca",
		    fx.now - 86400, fx.now + 3650 * 86400);
		fx.signer[g].issuer = fx.ca[g];
		fx.signer[g].key = fx.ca_key[g];
		fx.signer[g].md = EVP_sha256();
	}
	fx.resp_key = tu_keygen("ec:P-256");
	if (ocsp_responder_cert_make(NULL, fx.ca[0], fx.ca_key[0],
	    EVP_sha256(), fx.resp_key, NULL, fx.now - 3600, 0, &fx.resp,
	    &e) != 0)
		goto fail;
	fx.signer[0].responder_cert = fx.resp;
	fx.signer[0].key = fx.resp_key;
	if (ocsp_cache_new(&fx.cache, &e) != 0)
		goto fail;
	for (int g = 0; g < NGEN; g++)
		if (ocsp_cache_add_issuer(fx.cache, g + 1, fx.ca[g], &e) != 0)
			goto fail;
	mds[0] = EVP_sha1();
	mds[1] = EVP_sha256();
	for (int i = 0; i < 2 * NGEN; i++) {
		struct store_cert *c = &fx.certs[i];

		c->issuer_id = i / 2 + 1;
		if (serial_normalize(fx_serials[i], c->serial) != 0)
			abort();
		c->status = i % 2 == 0 ? STORE_CERT_VALID : STORE_CERT_REVOKED;
		c->revoked_at = i % 2 == 0 ? 0 : fx.now - 3600;
		c->revoke_reason = i % 2 == 0 ? -1 : 1;	/* keyCompromise */
		for (int m = 0; m < 2; m++) {
			if (ocsp_presign(&fx.signer[i / 2], c, mds[m], fx.now,
			    0, &der, &len, &e) != 0 ||
			    ocsp_cache_put(fx.cache, der, len, &e) != 0)
				goto fail;
			OPENSSL_free(der);
		}
	}
	return 0;
fail:
	fprintf(stderr, "fuzz_ocsp: %s\n", e.msg);
	abort();
}

/* Is der an OCSPResponse of this status (-1: any but successful)? For a
 * successful one, about the request's CertID? */
static void
check_response(const unsigned char *der, size_t len, int status,
    const OCSP_CERTID *asked)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *r;
	OCSP_BASICRESP *bs;
	const OCSP_CERTID *got;
	int s;

	FUZZ_CHECK((r = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) != NULL);
	FUZZ_CHECK(p == der + len);
	s = OCSP_response_status(r);
	if (status < 0)
		FUZZ_CHECK(s != OCSP_RESPONSE_STATUS_SUCCESSFUL);
	else
		FUZZ_CHECK(s == status);
	if (s == OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		FUZZ_CHECK((bs = OCSP_response_get1_basic(r)) != NULL);
		FUZZ_CHECK(OCSP_resp_count(bs) == 1);
		got = OCSP_SINGLERESP_get0_id(OCSP_resp_get0(bs, 0));
		FUZZ_CHECK(asked != NULL && OCSP_id_cmp(got, asked) == 0);
		OCSP_BASICRESP_free(bs);
	}
	OCSP_RESPONSE_free(r);
}

/* ocsp_job_miss: the record, if the "store" has it, or unknown. */
static void
miss(const struct ocsp_query *q, const OCSP_CERTID *asked)
{
	const struct ocsp_signer *s;
	const EVP_MD *md;
	const struct store_cert *rec = NULL;
	struct hsmca_err e;
	unsigned char *der = NULL;
	size_t len = 0;

	FUZZ_CHECK(q->gen_id >= 1 && q->gen_id <= NGEN);
	FUZZ_CHECK(q->id_nid == NID_sha1 || q->id_nid == NID_sha256);
	s = &fx.signer[q->gen_id - 1];
	md = q->id_nid == NID_sha256 ? EVP_sha256() : NULL;
	for (int i = 0; i < 2 * NGEN; i++)
		if (fx.certs[i].issuer_id == q->gen_id &&
		    strcmp(fx.certs[i].serial, q->serial) == 0)
			rec = &fx.certs[i];
	if (rec != NULL)
		FUZZ_CHECK(ocsp_presign(s, rec, md, fx.now, 0, &der, &len,
		    &e) == 0);
	else if (ocsp_unknown(s, q->serial, md, fx.now, 0, &der, &len,
	    &e) != 0) {
		/* The cache named a serial the signer refuses: say so. */
		fprintf(stderr, "unknown %s: %s\n", q->serial, e.msg);
		FUZZ_CHECK(!"a miss the signer cannot answer");
	}
	/* A request for a serial the cache holds under this hash is a
	 * hit, never a miss (all fixture responses are fresh). */
	FUZZ_CHECK(rec == NULL);
	check_response(der, len, OCSP_RESPONSE_STATUS_SUCCESSFUL, asked);
	OPENSSL_free(der);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	unsigned char buf[OCSP_REQUEST_MAX_BYTES + 3], *der = NULL;
	const unsigned char *req = data, *p;
	struct ocsp_query q;
	struct hsmca_err e;
	OCSP_REQUEST *r = NULL;
	const OCSP_CERTID *asked = NULL;
	char *enc;
	size_t reqlen = len, dlen = 0;
	int found, status;

	if (len >= strlen(GET_PREFIX) &&
	    memcmp(data, GET_PREFIX, strlen(GET_PREFIX)) == 0) {
		/* What evhttp hands over: a C string. */
		FUZZ_CHECK((enc = malloc(len + 1)) != NULL);
		memcpy(enc, data, len);
		enc[len] = '\0';
		status = ocsp_get_request(enc + strlen(GET_PREFIX), buf,
		    sizeof(buf), &reqlen);
		free(enc);
		if (status != 0) {
			FUZZ_CHECK(status ==
			    OCSP_RESPONSE_STATUS_MALFORMEDREQUEST ||
			    status == OCSP_RESPONSE_STATUS_INTERNALERROR);
			return 0;
		}
		FUZZ_CHECK(reqlen <= sizeof(buf));
		req = buf;
	} else if (len > OCSP_REQUEST_MAX_BYTES)
		return 0;	/* 413 before anything is parsed */

	FUZZ_CHECK(ocsp_answer(fx.cache, req, reqlen, fx.now, &der, &dlen,
	    &found, &q, &e) == 0);
	p = req;
	if ((r = d2i_OCSP_REQUEST(NULL, &p, (long)reqlen)) != NULL &&
	    OCSP_request_onereq_count(r) > 0)
		asked = OCSP_onereq_get0_id(OCSP_request_onereq_get0(r, 0));
	if (der != NULL)
		check_response(der, dlen, found ?
		    OCSP_RESPONSE_STATUS_SUCCESSFUL : -1, asked);
	else {
		FUZZ_CHECK(!found && asked != NULL);
		miss(&q, asked);
	}
	OPENSSL_free(der);
	OCSP_REQUEST_free(r);
	ERR_clear_error();
	return 0;
}
