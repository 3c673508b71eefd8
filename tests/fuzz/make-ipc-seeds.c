/* make-ipc-seeds.c: (re)generate tests/fuzz/corpus/ipc, the seeds of
 * fuzz_ipc: messages of every kind packed by hsmcad's own pack functions
 * (signer_job_pack, signer_answer_pack, admin_call_pack via
 * admin_call_unpack, metrics_signer_pack, ipcb_*), each behind the byte
 * that selects its reader in fuzz_ipc.c, and broken ones (truncated,
 * oversized lengths, fields out of range). Built by make check, run by
 * hand; list new files in Makefile.am (FUZZ_CORPUS):
 *
 *   tests/fuzz/make-ipc-seeds $srcdir/tests/fuzz/corpus/csr/device-ec256.der \
 *       $srcdir/tests/fuzz/corpus/ipc */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/ca.h"
#include "hsmca/util.h"

#include "../../daemon/hsmcad.h"
#include "../../daemon/ipc.h"
#include "../../daemon/metrics.h"

/* fuzz_ipc.c's first byte. */
enum { M_JOB, M_ANSWER, M_CALL, M_METRICS, M_READERS, M_STREAM };

static const char *outdir;
static unsigned char *csr;
static size_t csr_len;
static char *csr_b64;

static void
fail(const char *what)
{
	fprintf(stderr, "make-ipc-seeds: %s\n", what);
	exit(1);
}

/* NAME: the mode byte, the prefix (NULL: none) and the body. */
static void
seed(const char *name, int mode, const void *pre, size_t prelen,
    const void *p, size_t len)
{
	char path[4096];
	FILE *fp;
	unsigned char m = (unsigned char)mode;

	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	if ((fp = fopen(path, "wb")) == NULL ||
	    fwrite(&m, 1, 1, fp) != 1 ||
	    (prelen > 0 && fwrite(pre, 1, prelen, fp) != prelen) ||
	    (len > 0 && fwrite(p, 1, len, fp) != len) || fclose(fp) != 0)
		fail(path);
}

static void
seed_buf(const char *name, int mode, const struct ipc_buf *b)
{
	if (b->failed)
		fail(name);
	seed(name, mode, NULL, 0, b->p, b->len);
}

static void *
call(const char *json)
{
	void *c;

	if ((c = admin_call_unpack((const unsigned char *)json,
	    strlen(json))) == NULL)
		fail(json);
	return c;
}

/* A job of op, with the CSR's facts. */
static struct signer_job *
job_new(enum signer_op op)
{
	struct signer_job *job;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		fail("out of memory");
	job->op = op;
	return job;
}

static void
job_seed(const char *name, struct signer_job *job)
{
	struct ipc_buf b;

	memset(&b, 0, sizeof(b));
	signer_job_pack(job, &b);
	seed_buf(name, M_JOB, &b);
	ipcb_free(&b);
}

static void
job_drop(struct signer_job *job)
{
	if (job->admin != NULL)
		admin_call_drop(job->admin);
	job->admin = NULL;
	/* The CSR is shared between seeds. */
	job->csr_der = NULL;
	signer_job_free(job);
}

/* A SIGNER_ADMIN job written field by field, with this call. */
static void
admin_raw(const char *name, const char *json)
{
	struct ipc_buf b;

	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, SIGNER_ADMIN);
	ipcb_str(&b, "");		/* profile */
	ipcb_i64(&b, 0);		/* gen_id */
	ipcb_i64(&b, 0);		/* id_nid */
	ipcb_str(&b, "CN=x");		/* requester */
	ipcb_bytes(&b, NULL, 0);	/* csr */
	ipcb_str(&b, "");		/* id_cn */
	ipcb_u32(&b, 0);		/* cn_match */
	ipcb_bytes(&b, NULL, 0);	/* renew_subject */
	ipcb_bytes(&b, NULL, 0);	/* renew_san */
	ipcb_str(&b, "");		/* serial */
	ipcb_i64(&b, 0);		/* cursor */
	ipcb_i64(&b, 0);
	ipcb_str(&b, json);
	seed_buf(name, M_JOB, &b);
	ipcb_free(&b);
}

static void
jobs(void)
{
	X509_REQ *req;
	const unsigned char *p = csr;
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES *san;
	unsigned char *subj = NULL, *sanp = NULL;
	struct signer_job *job;
	struct ipc_buf b;
	char json[8192];
	int subjlen, sanlen;

	if ((req = d2i_X509_REQ(NULL, &p, (long)csr_len)) == NULL)
		fail("not a CSR");
	subjlen = i2d_X509_NAME(X509_REQ_get_subject_name(req), &subj);
	exts = X509_REQ_get_extensions(req);
	san = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	sanlen = san != NULL ? i2d_GENERAL_NAMES(san, &sanp) : 0;
	if (subjlen <= 0 || sanlen <= 0)
		fail("the CSR needs a subject and a SAN");

	job = job_new(SIGNER_ENROLL);
	snprintf(job->profile, sizeof(job->profile), "device");
	snprintf(job->requester, sizeof(job->requester),
	    "CN=dev-0001,O=Acme (bootstrap) 192.0.2.7");
	snprintf(job->id_cn, sizeof(job->id_cn), "dev-0001");
	job->cn_match = 1;
	job->csr_der = csr;
	job->csr_len = csr_len;
	job_seed("job-enroll", job);

	job->op = SIGNER_SERVERKEYGEN;
	snprintf(job->profile, sizeof(job->profile), "edge-ca");
	job->cn_match = 0;
	job_seed("job-serverkeygen", job);

	job->op = SIGNER_RENEW;
	snprintf(job->profile, sizeof(job->profile), "device");
	job->renew_subject = subj;
	job->renew_subject_len = (size_t)subjlen;
	job->renew_san = sanp;
	job->renew_san_len = (size_t)sanlen;
	job_seed("job-renew", job);
	job->renew_subject = job->renew_san = NULL;
	job_drop(job);

	job = job_new(SIGNER_CRL);
	job->gen_id = 2;
	job_seed("job-crl", job);
	job_drop(job);

	job = job_new(SIGNER_OCSP);
	job->cursor[0] = 17;
	job->cursor[1] = 4242;
	job_seed("job-ocsp", job);
	job_drop(job);

	job = job_new(SIGNER_OCSP_UNKNOWN);
	job->gen_id = 1;
	job->id_nid = NID_sha256;
	snprintf(job->serial, sizeof(job->serial),
	    "4E1F0A99C2D3E4F5061728394A5B6C7D");
	job_seed("job-ocsp-unknown", job);
	job_drop(job);

	job = job_new(SIGNER_CHECKPOINT);
	job_seed("job-checkpoint", job);
	job->op = SIGNER_ROTATE;
	job_seed("job-rotate", job);
	job_drop(job);

	/* A TLS key operation comes over keyop.c's channel (read-keyop),
	 * never as a job: this one is past keyop's bounds (an input over
	 * 1024 bytes, a padding over 64). */
	job = job_new(SIGNER_TLS_SIGN);
	job->id_nid = 1000;
	if ((job->csr_der = calloc(1, 2048)) == NULL)
		fail("out of memory");
	job->csr_len = 2048;
	job_seed("job-bad-tls-sign", job);
	free(job->csr_der);
	job_drop(job);

	job = job_new(SIGNER_ADMIN);
	snprintf(json, sizeof(json), "{\"role\":0,\"actor\":\"CN=alice, "
	    "sha256:9f86d081884c7d65\",\"argv\":[\"cert\",\"issue\","
	    "\"--csr\",\"@in:0\",\"--profile\",\"device\"],\"files\":"
	    "{\"@in:0\":\"%s\"},\"json\":true,\"step\":0,\"body\":null}",
	    csr_b64);
	job->admin = call(json);
	job_seed("job-admin", job);
	job_drop(job);

	job = job_new(SIGNER_BATCH);
	snprintf(json, sizeof(json), "{\"role\":1,\"actor\":\"CN=station-7\","
	    "\"argv\":null,\"files\":null,\"json\":true,\"step\":2,\"body\":"
	    "{\"batch\":3,\"profile\":\"device\",\"device\":\"dev-0001\","
	    "\"csr\":\"%s\"}}", csr_b64);
	job->admin = call(json);
	job_seed("job-batch", job);
	job_drop(job);

	/* Refused: ops the front never sends, bounds, the shape. */
	job = job_new(SIGNER_AUDIT);
	job_seed("job-bad-audit-op", job);
	job->op = SIGNER_SWEEP;
	job_seed("job-bad-sweep-op", job);
	job->op = SIGNER_OP_MAX;
	job_seed("job-bad-op-max", job);
	job_drop(job);

	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, SIGNER_ENROLL);
	ipcb_bytes(&b, "0123456789012345678901234567890123456789012345678901"
	    "234567890123", 64);	/* profile[64] has no room for its NUL */
	seed_buf("job-bad-profile-64", M_JOB, &b);
	ipcb_free(&b);

	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, SIGNER_ENROLL);
	ipcb_bytes(&b, "dev\0ice", 7);
	seed_buf("job-bad-nul-in-profile", M_JOB, &b);
	ipcb_free(&b);

	/* The enroll job cut in the CSR; and with a CSR of 4 GiB - 1. */
	job = job_new(SIGNER_ENROLL);
	job->csr_der = csr;
	job->csr_len = csr_len;
	memset(&b, 0, sizeof(b));
	signer_job_pack(job, &b);
	seed("job-bad-truncated", M_JOB, NULL, 0, b.p, b.len / 2);
	{
		unsigned char one = 0;

		seed("job-bad-trailing-byte", M_JOB, b.p, b.len, &one, 1);
	}
	ipcb_free(&b);
	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, SIGNER_ENROLL);
	ipcb_str(&b, "device");
	ipcb_i64(&b, 0);
	ipcb_i64(&b, 0);
	ipcb_str(&b, "CN=dev");
	ipcb_u32(&b, UINT32_MAX);	/* the CSR's length */
	ipcb_bytes(&b, csr, csr_len);
	seed_buf("job-bad-csr-length", M_JOB, &b);
	ipcb_free(&b);
	job->csr_der = NULL;
	job_drop(job);

	/* An admin job packed field by field; and the same whose call is
	 * not one: argv holds a number. */
	admin_raw("job-admin-raw", "{\"role\":2,\"actor\":\"x\",\"argv\":"
	    "[\"cert\",\"list\"],\"json\":false,\"step\":0}");
	admin_raw("job-bad-admin-argv", "{\"role\":0,\"actor\":\"x\",\"argv\":"
	    "[\"cert\",7],\"json\":false,\"step\":0}");

	GENERAL_NAMES_free(san);

	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	OPENSSL_free(subj);
	OPENSSL_free(sanp);
	X509_REQ_free(req);
}

static void
answer_seed(const char *name, struct signer_job *job)
{
	struct ipc_buf b;
	unsigned char op = (unsigned char)job->op;

	memset(&b, 0, sizeof(b));
	signer_answer_pack(job, &b);
	if (b.failed)
		fail(name);
	seed(name, M_ANSWER, &op, 1, b.p, b.len);
	ipcb_free(&b);
}

static void
answers(void)
{
	static const char reply[] = "{\"exit\":0,\"stdout\":\"{\\\"serial\\\":"
	    "\\\"4E1F\\\"}\\n\",\"stderr\":\"\",\"files\":{}}";
	struct signer_job *job;
	struct ipc_buf b;
	unsigned char op;
	json_t *r;

	job = job_new(SIGNER_ENROLL);
	job->status = 200;
	snprintf(job->serial, sizeof(job->serial),
	    "4E1F0A99C2D3E4F5061728394A5B6C7D");
	job->p7_der = csr;	/* bytes in place of a PKCS#7 */
	job->p7_len = csr_len;
	answer_seed("answer-enroll", job);
	job->op = SIGNER_SERVERKEYGEN;
	job->key_der = (unsigned char *)"0\x81\x87\x02\x01\x00";
	job->key_len = 6;
	answer_seed("answer-serverkeygen", job);
	job->key_der = NULL;
	job->key_len = 0;
	job->op = SIGNER_TLS_SIGN;
	job->serial[0] = '\0';
	job->p7_len = 72;
	answer_seed("answer-tls-sign", job);
	job->op = SIGNER_ENROLL;
	job->status = 400;
	job->p7_der = NULL;
	job->p7_len = 0;
	snprintf(job->reason, sizeof(job->reason), "renewal must keep the "
	    "subject of the current certificate");
	answer_seed("answer-refused", job);
	job->status = 99;
	answer_seed("answer-bad-status-99", job);
	job->status = 600;
	answer_seed("answer-bad-status-600", job);
	job->reason[0] = '\0';
	job_drop(job);

	job = job_new(SIGNER_CRL);
	job->status = 200;
	job->p7_der = csr;
	job->p7_len = csr_len;
	job->this_update = 1795000000;
	job->next_update = 1795086400;
	job->crl_number = 41;
	answer_seed("answer-crl", job);
	job->p7_der = NULL;
	job->p7_len = 0;
	job->op = SIGNER_OCSP;
	job->this_update = job->next_update = 0;
	job->crl_number = 500;
	job->more = 1;
	job->cursor[0] = 18;
	job->cursor[1] = 4742;
	job->swept = 1;
	answer_seed("answer-ocsp", job);
	job->op = SIGNER_ROTATE;
	job->more = job->swept = 0;
	job->crl_number = 0;
	job->cursor[0] = job->cursor[1] = 0;
	if ((job->events = calloc(1, sizeof(*job->events))) == NULL)
		fail("out of memory");
	job->events->n = 3;
	job->events->ev[0].kind = CA_EVENT_CREATED;
	job->events->ev[0].gen_id = 3;
	snprintf(job->events->ev[0].msg, CA_EVENT_MSG, "generation 3 "
	    "created, active from 2026-12-01");
	job->events->ev[1].kind = CA_EVENT_RETIRED;
	job->events->ev[1].gen_id = 1;
	snprintf(job->events->ev[1].msg, CA_EVENT_MSG, "generation 1 retired");
	job->events->ev[2].kind = CA_EVENT_EXPIRED;
	job->events->ev[2].gen_id = 0;
	answer_seed("answer-rotate", job);
	/* Too many events: the count is past CA_EVENTS_MAX. */
	memset(&b, 0, sizeof(b));
	signer_answer_pack(job, &b);
	op = SIGNER_ROTATE;
	{
		/* status, reason, serial, p7: 4 + 4 + 4 + 4, then 3 i64, u32,
		 * 2 i64, u32, key 4: the count is at 68. */
		uint32_t n = CA_EVENTS_MAX + 1;

		if (b.len < 72)
			fail("answer too short");
		memcpy(b.p + 68, &n, sizeof(n));
		seed("answer-bad-17-events", M_ANSWER, &op, 1, b.p, b.len);
		n = 4;	/* one more than there are */
		memcpy(b.p + 68, &n, sizeof(n));
		seed("answer-bad-events-short", M_ANSWER, &op, 1, b.p, b.len);
	}
	ipcb_free(&b);
	free(job->events);
	job->events = NULL;
	job_drop(job);

	job = job_new(SIGNER_ADMIN);
	job->admin = call("{\"role\":1,\"actor\":\"CN=op-1\",\"argv\":"
	    "[\"cert\",\"list\"],\"files\":null,\"json\":true,\"step\":0,"
	    "\"body\":null}");
	job->status = 200;
	if ((r = json_loads(reply, 0, NULL)) == NULL ||
	    admin_reply_unpack(job->admin, (const unsigned char *)reply,
	    strlen(reply)) != 0)
		fail("reply");
	json_decref(r);
	answer_seed("answer-admin", job);
	job->op = SIGNER_BATCH;
	answer_seed("answer-batch", job);
	/* A reply that is not an object. */
	job->op = SIGNER_ADMIN;
	job_drop(job);
	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, 200);
	ipcb_str(&b, "");
	ipcb_str(&b, "");
	ipcb_bytes(&b, NULL, 0);
	for (int i = 0; i < 3; i++)
		ipcb_i64(&b, 0);
	ipcb_u32(&b, 0);
	ipcb_i64(&b, 0);
	ipcb_i64(&b, 0);
	ipcb_u32(&b, 0);
	ipcb_bytes(&b, NULL, 0);
	ipcb_u32(&b, 0);
	ipcb_str(&b, "[1,2,3]");
	op = SIGNER_ADMIN;
	seed("answer-bad-reply-array", M_ANSWER, &op, 1, b.p, b.len);
	/* A p7 longer than the message. */
	memcpy(b.p + 12, "\xff\xff\xff\x05", 4);
	op = SIGNER_ENROLL;
	seed("answer-bad-p7-length", M_ANSWER, &op, 1, b.p, b.len);
	ipcb_free(&b);
}

static void
calls(void)
{
	static const struct {
		const char *name, *json;
	} c[] = {
		{ "call-admin", "{\"role\":0,\"actor\":\"CN=alice\",\"argv\":"
		    "[\"ca\",\"rotate\",\"--now\"],\"files\":null,\"json\":false,"
		    "\"step\":0,\"body\":null}" },
		{ "call-files", "{\"role\":1,\"actor\":\"CN=op\",\"argv\":[\"cert\","
		    "\"issue\",\"--csr\",\"@in:0\"],\"files\":{\"@in:0\":\"MIIB\"},"
		    "\"json\":true,\"step\":0,\"body\":null}" },
		{ "call-batch-begin", "{\"role\":1,\"actor\":\"CN=station-7\","
		    "\"argv\":null,\"files\":null,\"json\":true,\"step\":0,"
		    "\"body\":{\"profile\":\"device\",\"count\":100}}" },
		{ "call-batch-end", "{\"role\":1,\"actor\":\"CN=station-7\","
		    "\"step\":4,\"json\":true,\"body\":{\"batch\":3}}" },
		{ "call-bad-role", "{\"role\":3,\"actor\":\"x\",\"argv\":[\"ca\"],"
		    "\"json\":false,\"step\":0}" },
		{ "call-bad-step", "{\"role\":0,\"actor\":\"x\",\"body\":{},"
		    "\"json\":false,\"step\":5}" },
		{ "call-bad-duplicate", "{\"role\":2,\"role\":0,\"actor\":\"x\","
		    "\"argv\":[\"ca\"],\"json\":false,\"step\":0}" },
		{ "call-bad-nothing", "{\"role\":0,\"actor\":\"x\",\"argv\":null,"
		    "\"json\":false,\"step\":0}" },
		{ "call-bad-json-int", "{\"role\":0,\"actor\":\"x\",\"argv\":[],"
		    "\"json\":1,\"step\":0}" },
		{ "call-bad-nul-in-arg", "{\"role\":0,\"actor\":\"x\",\"argv\":[\"cert\","
		    "\"list\\u0000--all\"],\"json\":false,\"step\":0}" },
		{ "call-bad-not-json", "role=0" },
	};
	char big[8192];
	size_t n;

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		seed(c[i].name, M_CALL, NULL, 0, c[i].json, strlen(c[i].json));
	n = (size_t)snprintf(big, sizeof(big), "{\"role\":0,\"actor\":\"x\","
	    "\"json\":false,\"step\":0,\"argv\":[");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"a\"",
		    i > 0 ? "," : "");
	n += (size_t)snprintf(big + n, sizeof(big) - n, "]}");
	seed("call-bad-65-args", M_CALL, NULL, 0, big, n);
	n = (size_t)snprintf(big, sizeof(big), "{\"role\":0,\"json\":false,"
	    "\"step\":0,\"argv\":[\"ca\"],\"actor\":\"%0300d\"}", 0);
	seed("call-bad-actor-300", M_CALL, NULL, 0, big, n);
}

static void
metrics(void)
{
	static const int ok[1] = { 0 }, failed[2] = { 1, 0 };
	struct ipc_buf b;
	int64_t v = -1;

	metrics_sign_begin();
	metrics_sign_end(0.004, ok, 1);
	metrics_sign_begin();
	metrics_sign_end(0.250, failed, 2);
	metrics_swept(3);
	metrics_sign_begin();
	memset(&b, 0, sizeof(b));
	metrics_signer_pack(&b);
	seed_buf("metrics", M_METRICS, &b);
	seed("metrics-bad-truncated", M_METRICS, NULL, 0, b.p, b.len - 4);
	memcpy(b.p + b.len - sizeof(v), &v, sizeof(v));
	seed_buf("metrics-bad-signing", M_METRICS, &b);
	ipcb_free(&b);
	metrics_sign_end(0.001, ok, 1);
}

static void
readers(void)
{
	struct ipc_buf b;
	unsigned char shape;
	/* Shape 5: the number of ops, the ops (bits 0-2 the reader, the
	 * rest its bound), the body. */
	static const unsigned char prog[] = {
		5, 7, 0, 2, 3 | 8 << 3, 5 | 16 << 3, 6 | 3 << 3, 4 | 1 << 3, 1
	};
	static const unsigned char prog_short[] = {
		5, 8, 0, 2, 3 | 7 << 3, 5 | 15 << 3, 6 | 3 << 3, 4, 1, 2
	};

	memset(&b, 0, sizeof(b));
	ipcb_str(&b, "CN=dev-0001 192.0.2.7");
	ipcb_str(&b, "/.well-known/est/simpleenroll");
	ipcb_str(&b, "the CSR's CN is not the client certificate's");
	shape = 0;
	seed("read-audit", M_READERS, &shape, 1, b.p, b.len);
	seed("read-audit-truncated", M_READERS, &shape, 1, b.p, b.len - 3);
	ipcb_free(&b);

	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, 1);
	shape = 1;
	seed("read-issuer-reload", M_READERS, &shape, 1, b.p, b.len);
	ipcb_free(&b);

	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, 0);
	ipcb_bytes(&b, "0123456789abcdef0123456789abcdef", 32);
	shape = 2;
	seed("read-keyop", M_READERS, &shape, 1, b.p, b.len);
	ipcb_free(&b);
	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, 1);
	ipcb_u32(&b, 1025);	/* over KEYOP_INPUT_MAX */
	shape = 2;
	seed("read-keyop-too-long", M_READERS, &shape, 1, b.p, b.len);
	ipcb_free(&b);

	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, 200);
	ipcb_bytes(&b, csr, 72);
	shape = 3;
	seed("read-keyop-answer", M_READERS, &shape, 1, b.p, b.len);
	ipcb_free(&b);

	memset(&b, 0, sizeof(b));
	ipcb_i64(&b, 2);
	ipcb_bytes(&b, csr, csr_len);
	shape = 4;
	seed("read-ocsp-put", M_READERS, &shape, 1, b.p, b.len);
	ipcb_free(&b);

	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, 7);
	ipcb_i64(&b, -1);
	ipcb_str(&b, "abcdefgh");
	ipcb_bytes(&b, "0123456789abcdef", 16);
	ipcb_bytes(&b, "xyz", 3);
	ipcb_str(&b, "q");
	ipcb_u32(&b, 9);
	seed("read-program", M_READERS, prog, sizeof(prog), b.p, b.len);
	seed("read-program-bounds", M_READERS, prog_short, sizeof(prog_short),
	    b.p, b.len);
	ipcb_free(&b);
}

/* A message with its header, as on the channel. */
static void
msg(struct ipc_buf *s, uint32_t type, uint64_t id, const struct ipc_buf *b)
{
	uint32_t len = b != NULL ? (uint32_t)b->len : 0;

	ipcb_u32(s, type);
	ipcb_u32(s, len);
	ipcb_i64(s, (int64_t)id);
	if (len > 0) {
		/* The body, without a length of its own. */
		size_t at = s->len;

		ipcb_bytes(s, b->p, b->len);
		memmove(s->p + at, s->p + at + 4, b->len);
		s->len -= 4;
	}
}

static void
streams(void)
{
	struct ipc_buf s, b;
	struct signer_job *job;

	/* front -> signer: a job, its abandon, an audit record, a reload,
	 * metrics. */
	memset(&s, 0, sizeof(s));
	job = job_new(SIGNER_ENROLL);
	snprintf(job->profile, sizeof(job->profile), "device");
	job->csr_der = csr;
	job->csr_len = csr_len;
	memset(&b, 0, sizeof(b));
	signer_job_pack(job, &b);
	msg(&s, IPC_JOB, 1, &b);
	ipcb_free(&b);
	job->csr_der = NULL;
	job_drop(job);
	msg(&s, IPC_ABANDON, 1, NULL);
	memset(&b, 0, sizeof(b));
	ipcb_str(&b, "CN=dev");
	ipcb_str(&b, "/.well-known/est/simpleenroll");
	ipcb_str(&b, "no client certificate");
	msg(&s, IPC_AUDIT, 0, &b);
	ipcb_free(&b);
	memset(&b, 0, sizeof(b));
	ipcb_u32(&b, 1);
	msg(&s, IPC_ISSUER, 0, &b);
	ipcb_free(&b);
	msg(&s, IPC_METRICS, 2, NULL);
	seed_buf("stream-front", M_STREAM, &s);
	/* The same cut in its last header, and in a body. */
	seed("stream-cut-header", M_STREAM, NULL, 0, s.p, s.len - 5);
	seed("stream-cut-body", M_STREAM, NULL, 0, s.p, 16 + 10);
	ipcb_free(&s);

	/* signer -> front: hello, an answer, metrics, OCSP updates. */
	memset(&s, 0, sizeof(s));
	msg(&s, IPC_HELLO, 0, NULL);
	job = job_new(SIGNER_ENROLL);
	job->status = 200;
	job->p7_der = csr;
	job->p7_len = csr_len;
	memset(&b, 0, sizeof(b));
	signer_answer_pack(job, &b);
	msg(&s, IPC_ANSWER, 1, &b);
	ipcb_free(&b);
	job->p7_der = NULL;
	job_drop(job);
	memset(&b, 0, sizeof(b));
	metrics_signer_pack(&b);
	msg(&s, IPC_METRICS_ANSWER, 2, &b);
	ipcb_free(&b);
	memset(&b, 0, sizeof(b));
	ipcb_i64(&b, 1);
	ipcb_bytes(&b, csr, csr_len);
	msg(&s, IPC_OCSP_ISSUER, 0, &b);
	msg(&s, IPC_OCSP_PUT, 0, &b);
	ipcb_free(&b);
	memset(&b, 0, sizeof(b));
	ipcb_i64(&b, 1795000000);
	ipcb_bytes(&b, NULL, 0);
	msg(&s, IPC_OCSP_EXPIRE, 0, &b);
	ipcb_free(&b);
	seed_buf("stream-signer", M_STREAM, &s);
	ipcb_free(&s);

	/* Headers that are not: type 0, a type past the last, a body over
	 * IPC_BODY_MAX, a body announced and never sent. */
	memset(&s, 0, sizeof(s));
	msg(&s, 0, 0, NULL);
	seed_buf("stream-bad-type-0", M_STREAM, &s);
	ipcb_free(&s);
	memset(&s, 0, sizeof(s));
	msg(&s, IPC_TYPE_MAX, 0, NULL);
	seed_buf("stream-bad-type-max", M_STREAM, &s);
	ipcb_free(&s);
	memset(&s, 0, sizeof(s));
	ipcb_u32(&s, IPC_JOB);
	ipcb_u32(&s, IPC_BODY_MAX + 1);
	ipcb_i64(&s, 1);
	seed_buf("stream-bad-body-max", M_STREAM, &s);
	ipcb_free(&s);
	memset(&s, 0, sizeof(s));
	ipcb_u32(&s, IPC_JOB);
	ipcb_u32(&s, IPC_BODY_MAX);
	ipcb_i64(&s, 1);
	ipcb_u32(&s, SIGNER_ENROLL);
	seed_buf("stream-body-never-sent", M_STREAM, &s);
	ipcb_free(&s);
}

int
main(int argc, char *argv[])
{
	struct hsmca_err e;
	char *b64;
	size_t b64len, n = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: make-ipc-seeds CSR.der OUTDIR\n");
		return 2;
	}
	outdir = argv[2];
	if (util_read_file(argv[1], 65536, &csr, &csr_len, &e) != 0)
		fail(e.msg);
	if (util_b64_encode(csr, csr_len, &b64, &b64len, &e) != 0)
		fail(e.msg);
	if ((csr_b64 = malloc(b64len + 1)) == NULL)
		fail("out of memory");
	/* One line: it goes into a JSON string. */
	for (size_t i = 0; i < b64len; i++)
		if (b64[i] != '\n' && b64[i] != '\r')
			csr_b64[n++] = b64[i];
	csr_b64[n] = '\0';
	free(b64);
	jobs();
	answers();
	calls();
	metrics();
	readers();
	streams();
	free(csr_b64);
	free(csr);
	return 0;
}
