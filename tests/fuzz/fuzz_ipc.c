/* fuzz_ipc.c: the messages between hsmcad's processes (daemon/ipc.h) as
 * the signer takes apart what the front sends, and the front what the
 * signer answers: signer_job_unpack, signer_answer_unpack,
 * admin_call_unpack, metrics_signer_unpack, the ipcr_* readers, and the
 * framing of a channel (ipc_new's reader, ipc_recv_one) on a socketpair.
 *
 * Input: the first byte picks what reads the rest:
 *   0  IPC_JOB body                    signer_job_unpack
 *   1  IPC_ANSWER body; the next byte  signer_answer_unpack into a job of
 *      picks the op                    that op (SIGNER_ADMIN, SIGNER_BATCH:
 *                                      with a call from admin_call_unpack)
 *   2  a SIGNER_ADMIN call (JSON)      admin_call_unpack
 *   3  IPC_METRICS_ANSWER body         metrics_signer_unpack
 *   4  a body; the next byte picks     the shapes signerd.c, link.c and
 *      a shape                         keyop.c read with ipcr_* directly,
 *                                      or (shape 5) a program of reads
 *   5  a byte stream                   a channel's messages, each to its
 *                                      reader; ipc_recv_one on the first
 *
 * Invariants: a refusal is NULL or -1 and leaves nothing allocated; an
 * accepted job has an op the front may send (< SIGNER_OP_MAX, never
 * SIGNER_AUDIT or SIGNER_SWEEP, which the signer makes itself, never
 * SIGNER_TLS_SIGN: keyop.c's channel carries those
 * with its own bounds), NUL-terminated strings inside their arrays, byte
 * strings within their bounds (a CSR 16 MiB, a name 64 KiB), a call when
 * and only when the op is SIGNER_ADMIN or SIGNER_BATCH, no answer
 * fields; an accepted answer has a status 100..599, at most
 * CA_EVENTS_MAX events; an accepted admin call has a known role and
 * step, an actor under 300 bytes, at most 64 argv strings of under 4096
 * bytes without NUL, what was sent; pack(unpack(x)) unpacks again and
 * packs to the same bytes (metrics: the sum within a microsecond);
 * a reader that went bad stays bad and yields zeros and empty strings;
 * a channel delivers only whole messages of known types within
 * IPC_BODY_MAX. ASan/LSan: no memory error, no leak. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "hsmca/ca.h"

#include "../../daemon/hsmcad.h"
#include "../../daemon/ipc.h"
#include "../../daemon/metrics.h"
#include "fuzz.h"

/* daemon/signer.c's WIRE_CSR_MAX and WIRE_NAME_MAX, admin.c's bounds. */
#define FUZZ_CSR_MAX	(16U * 1024 * 1024)
#define FUZZ_NAME_MAX	(64U * 1024)
#define FUZZ_ARGV_MAX	64
#define FUZZ_ARG_MAX	4096
#define FUZZ_ACTOR_MAX	300
#define FUZZ_STEP_MAX	5
/* A stream larger than this is cut: the socketpair takes it at once. */
#define FUZZ_STREAM_MAX	(64 * 1024)

/* The calls a SIGNER_ADMIN and a SIGNER_BATCH job carry when their
 * answer is read: what admin_call_pack makes of a real request. */
static const char fuzz_admin_call[] =
    "{\"role\":1,\"actor\":\"CN=op-1\",\"argv\":[\"cert\",\"list\"],"
    "\"files\":null,\"json\":true,\"step\":0,\"body\":null}";
static const char fuzz_batch_call[] =
    "{\"role\":1,\"actor\":\"CN=station-7\",\"argv\":null,\"files\":null,"
    "\"json\":true,\"step\":2,\"body\":{\"batch\":3,\"profile\":\"device\","
    "\"csr\":\"AAAA\"}}";

/* FUZZ_IPC_VERBOSE set: each input's verdict on stderr (which seeds
 * get past the parsers). */
static int verbose;

static void
verdict(const char *what, int accepted)
{
	if (verbose)
		fprintf(stderr, "fuzz_ipc: %s %s\n", what, accepted ?
		    "accepted" : "refused");
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	verbose = getenv("FUZZ_IPC_VERBOSE") != NULL;
	/* ipc_new's bufferevents are thread-safe, as in hsmcad. */
	FUZZ_CHECK(evthread_use_pthreads() == 0);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void
rd_init(struct ipc_rd *r, const uint8_t *p, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->p = p;
	r->len = len;
}

static void
check_str(const char *s, size_t size)
{
	FUZZ_CHECK(memchr(s, '\0', size) != NULL);
}

static void
check_bytes(const unsigned char *p, size_t len, size_t max)
{
	FUZZ_CHECK(len <= max);
	FUZZ_CHECK((p == NULL) == (len == 0));
}

/* A job and its call, as signerd.c drops them. */
static void
job_drop(struct signer_job *job)
{
	if (job == NULL)
		return;
	if (job->admin != NULL)
		admin_call_drop(job->admin);
	job->admin = NULL;
	signer_job_free(job);
}

static void
buf_same(const struct ipc_buf *a, const struct ipc_buf *b)
{
	FUZZ_CHECK(!a->failed && !b->failed);
	FUZZ_CHECK(a->len == b->len);
	FUZZ_CHECK(a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* ---- 0: a job from the front ---- */

static void
check_job(const struct signer_job *job)
{
	FUZZ_CHECK(job->op < SIGNER_OP_MAX && job->op != SIGNER_AUDIT &&
	    job->op != SIGNER_SWEEP && job->op != SIGNER_TLS_SIGN);
	check_str(job->profile, sizeof(job->profile));
	check_str(job->requester, sizeof(job->requester));
	check_str(job->id_cn, sizeof(job->id_cn));
	check_str(job->serial, sizeof(job->serial));
	check_bytes(job->csr_der, job->csr_len, FUZZ_CSR_MAX);
	check_bytes(job->renew_subject, job->renew_subject_len,
	    FUZZ_NAME_MAX);
	check_bytes(job->renew_san, job->renew_san_len, FUZZ_NAME_MAX);
	FUZZ_CHECK(job->cn_match == 0 || job->cn_match == 1);
	FUZZ_CHECK((job->admin != NULL) == (job->op == SIGNER_ADMIN ||
	    job->op == SIGNER_BATCH));
	/* Nothing of an answer, nothing the signer's process sets. */
	FUZZ_CHECK(job->rt == NULL && job->p7_der == NULL &&
	    job->key_der == NULL && job->events == NULL);
	FUZZ_CHECK(job->status == 0 && job->reason[0] == '\0');
	FUZZ_CHECK(job->done == NULL && job->ipc_id == 0);
}

static void
fuzz_job(const uint8_t *data, size_t len)
{
	struct signer_job *job, *again;
	struct ipc_buf b1, b2;
	struct ipc_rd r;

	memset(&b1, 0, sizeof(b1));
	memset(&b2, 0, sizeof(b2));
	rd_init(&r, data, len);
	job = signer_job_unpack(&r);
	verdict("job", job != NULL);
	if (job == NULL)
		return;
	check_job(job);
	signer_job_pack(job, &b1);
	FUZZ_CHECK(!b1.failed);
	rd_init(&r, b1.p, b1.len);
	FUZZ_CHECK((again = signer_job_unpack(&r)) != NULL);
	check_job(again);
	FUZZ_CHECK(again->op == job->op);
	signer_job_pack(again, &b2);
	buf_same(&b1, &b2);
	ipcb_free(&b1);
	ipcb_free(&b2);
	job_drop(job);
	job_drop(again);
}

/* ---- 1: an answer from the signer ---- */

static struct signer_job *
answer_job(enum signer_op op)
{
	struct signer_job *job;
	const char *call = NULL;

	FUZZ_CHECK((job = calloc(1, sizeof(*job))) != NULL);
	job->op = op;
	if (op == SIGNER_ADMIN)
		call = fuzz_admin_call;
	else if (op == SIGNER_BATCH)
		call = fuzz_batch_call;
	if (call != NULL)
		FUZZ_CHECK((job->admin = admin_call_unpack(
		    (const unsigned char *)call, strlen(call))) != NULL);
	return job;
}

static void
check_answer(const struct signer_job *job)
{
	FUZZ_CHECK(job->status >= 100 && job->status <= 599);
	check_str(job->reason, sizeof(job->reason));
	check_str(job->serial, sizeof(job->serial));
	check_bytes(job->p7_der, job->p7_len, IPC_BODY_MAX);
	check_bytes(job->key_der, job->key_len, FUZZ_NAME_MAX);
	FUZZ_CHECK(job->more == 0 || job->more == 1);
	FUZZ_CHECK(job->swept == 0 || job->swept == 1);
	if (job->events != NULL) {
		FUZZ_CHECK(job->events->n >= 1 &&
		    job->events->n <= CA_EVENTS_MAX);
		for (size_t i = 0; i < job->events->n; i++)
			check_str(job->events->ev[i].msg,
			    sizeof(job->events->ev[i].msg));
	}
}

static void
fuzz_answer(const uint8_t *data, size_t len)
{
	struct signer_job *job, *again;
	struct ipc_buf b1, b2;
	struct ipc_rd r;
	enum signer_op op;

	if (len < 1)
		return;
	op = (enum signer_op)(data[0] % SIGNER_OP_MAX);
	memset(&b1, 0, sizeof(b1));
	memset(&b2, 0, sizeof(b2));
	job = answer_job(op);
	rd_init(&r, data + 1, len - 1);
	if (signer_answer_unpack(job, &r) != 0) {
		verdict("answer", 0);
		job_drop(job);
		return;
	}
	verdict("answer", 1);
	check_answer(job);
	signer_answer_pack(job, &b1);
	FUZZ_CHECK(!b1.failed);
	again = answer_job(op);
	rd_init(&r, b1.p, b1.len);
	FUZZ_CHECK(signer_answer_unpack(again, &r) == 0);
	check_answer(again);
	signer_answer_pack(again, &b2);
	buf_same(&b1, &b2);
	ipcb_free(&b1);
	ipcb_free(&b2);
	job_drop(job);
	job_drop(again);
}

/* ---- 2: an admin call ---- */

/* What admin_call_pack made of an accepted call, member by member. */
static void
check_call(json_t *o, json_t *sent)
{
	json_t *argv, *files, *body, *v;
	size_t i;

	FUZZ_CHECK(json_is_object(o));
	v = json_object_get(o, "role");
	FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) < CONFIG_ROLE_MAX);
	v = json_object_get(o, "step");
	FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) < FUZZ_STEP_MAX);
	v = json_object_get(o, "actor");
	FUZZ_CHECK(json_is_string(v) &&
	    json_string_length(v) < FUZZ_ACTOR_MAX);
	FUZZ_CHECK(json_is_boolean(json_object_get(o, "json")));
	argv = json_object_get(o, "argv");
	files = json_object_get(o, "files");
	body = json_object_get(o, "body");
	FUZZ_CHECK(json_is_null(argv) || json_is_array(argv));
	FUZZ_CHECK(json_is_null(files) || json_is_object(files));
	FUZZ_CHECK(json_is_null(body) || json_is_object(body));
	FUZZ_CHECK(!json_is_null(argv) || !json_is_null(body));
	if (json_is_array(argv)) {
		FUZZ_CHECK(json_array_size(argv) <= FUZZ_ARGV_MAX);
		json_array_foreach(argv, i, v) {
			FUZZ_CHECK(json_is_string(v));
			/* As admin_parse_request lets them through: what the
			 * signer runs is what was sent. */
			FUZZ_CHECK(json_string_length(v) < FUZZ_ARG_MAX);
			FUZZ_CHECK(strlen(json_string_value(v)) ==
			    json_string_length(v));
		}
	}
	/* The parts are the ones sent, not a copy that lost something. */
	if (sent != NULL) {
		v = json_object_get(sent, "argv");
		FUZZ_CHECK(json_equal(argv, v != NULL ? v : json_null()));
		v = json_object_get(sent, "files");
		FUZZ_CHECK(json_equal(files, v != NULL ? v : json_null()));
		v = json_object_get(sent, "body");
		FUZZ_CHECK(json_equal(body, v != NULL ? v : json_null()));
	}
}

static void
fuzz_call(const uint8_t *data, size_t len)
{
	void *call, *again;
	char *s1, *s2;
	json_t *o, *sent;

	call = admin_call_unpack(data, len);
	verdict("admin call", call != NULL);
	if (call == NULL)
		return;
	sent = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
	    NULL);
	FUZZ_CHECK(sent != NULL);
	FUZZ_CHECK((s1 = admin_call_pack(call)) != NULL);
	FUZZ_CHECK((o = json_loads(s1, JSON_REJECT_DUPLICATES, NULL)) != NULL);
	check_call(o, sent);
	json_decref(o);
	json_decref(sent);
	FUZZ_CHECK((again = admin_call_unpack((const unsigned char *)s1,
	    strlen(s1))) != NULL);
	FUZZ_CHECK((s2 = admin_call_pack(again)) != NULL);
	FUZZ_CHECK(strcmp(s1, s2) == 0);
	free(s1);
	free(s2);
	admin_call_drop(call);
	admin_call_drop(again);
}

/* ---- 3: the signer's counters ---- */

static void
fuzz_metrics(const uint8_t *data, size_t len)
{
	struct ipc_buf b;
	struct ipc_rd r;
	int64_t in, out;
	size_t n, sum;

	rd_init(&r, data, len);
	if (metrics_signer_unpack(&r) != 0) {
		verdict("metrics", 0);
		return;
	}
	verdict("metrics", 1);
	/* Buckets, count, the sum in microseconds, errors, signing. */
	FUZZ_CHECK(len % sizeof(int64_t) == 0 && len >= 5 * sizeof(int64_t));
	n = len / sizeof(int64_t);
	sum = n - 3;
	memcpy(&in, data + (n - 1) * sizeof(int64_t), sizeof(in));
	FUZZ_CHECK(in >= 0 && in <= INT32_MAX);
	/* Packing is the signer's and rounds the sum through a double: it
	 * never packs a sum it did not count, so only a plausible one here
	 * (a sum near INT64_MAX would overflow the conversion back). */
	memcpy(&in, data + sum * sizeof(int64_t), sizeof(in));
	if (in < -(INT64_C(1) << 50) || in > (INT64_C(1) << 50))
		return;
	memset(&b, 0, sizeof(b));
	metrics_signer_pack(&b);
	FUZZ_CHECK(!b.failed && b.len == len);
	for (size_t i = 0; i < n; i++) {
		memcpy(&in, data + i * sizeof(int64_t), sizeof(in));
		memcpy(&out, b.p + i * sizeof(int64_t), sizeof(out));
		if (i == sum)
			FUZZ_CHECK(out - in >= -1 && out - in <= 1);
		else
			FUZZ_CHECK(out == in);
	}
	ipcb_free(&b);
}

/* ---- 4: bodies read with the ipcr_* readers directly ---- */

/* Every read also checks the reader: the offset within the body, a bad
 * reader stays bad. */
struct rd_check {
	struct ipc_rd	*r;
	int		 was_bad;
};

static void
rd_after(struct rd_check *c)
{
	FUZZ_CHECK(c->r->off <= c->r->len);
	if (c->was_bad)
		FUZZ_CHECK(c->r->bad);
	c->was_bad = c->r->bad;
}

static void
rd_u32(struct rd_check *c)
{
	uint32_t v = ipcr_u32(c->r);

	if (c->r->bad)
		FUZZ_CHECK(v == 0);
	rd_after(c);
}

static void
rd_i64(struct rd_check *c)
{
	int64_t v = ipcr_i64(c->r);

	if (c->r->bad)
		FUZZ_CHECK(v == 0);
	rd_after(c);
}

static void
rd_str(struct rd_check *c, size_t size)
{
	char *s;

	FUZZ_CHECK((s = malloc(size)) != NULL);
	memset(s, 'x', size);
	ipcr_str(c->r, s, size);
	check_str(s, size);
	if (c->r->bad)
		FUZZ_CHECK(s[0] == '\0');
	rd_after(c);
	free(s);
}

static void
rd_view(struct rd_check *c, size_t max)
{
	const unsigned char *p;
	size_t n = 1234;

	p = ipcr_view(c->r, &n, max);
	FUZZ_CHECK(n <= max);
	if (c->r->bad)
		FUZZ_CHECK(p == NULL && n == 0);
	else if (p != NULL) {
		FUZZ_CHECK(p >= c->r->p && p + n <= c->r->p + c->r->len);
		FUZZ_CHECK(p + n == c->r->p + c->r->off);
	}
	rd_after(c);
}

static void
rd_bytes(struct rd_check *c, size_t max)
{
	unsigned char *p;
	size_t n = 1234;

	ipcr_bytes(c->r, &p, &n, max);
	check_bytes(p, n, max);
	if (c->r->bad)
		FUZZ_CHECK(p == NULL);
	rd_after(c);
	free(p);
}

static void
rd_end(struct rd_check *c)
{
	FUZZ_CHECK((ipcr_end(c->r) == 0) ==
	    (!c->r->bad && c->r->off == c->r->len));
}

static void
fuzz_readers(const uint8_t *data, size_t len)
{
	struct ipc_rd r;
	struct rd_check c = { &r, 0 };
	size_t nops;

	if (len < 1)
		return;
	rd_init(&r, data + 1, len - 1);
	switch (data[0] % 6) {
	case 0:	/* IPC_AUDIT (signerd.c) */
		rd_str(&c, 512);
		rd_str(&c, 256);
		rd_str(&c, HSMCA_ERRMSG_MAX);
		break;
	case 1:	/* IPC_ISSUER (signerd.c) */
		rd_u32(&c);
		break;
	case 2:	/* a TLS key operation (keyop.c, the signer) */
		rd_u32(&c);
		rd_bytes(&c, 1024);
		break;
	case 3:	/* its answer (keyop.c, the front) */
		rd_u32(&c);
		rd_view(&c, 1100);
		break;
	case 4:	/* IPC_OCSP_* (link.c) */
		rd_i64(&c);
		rd_view(&c, IPC_BODY_MAX);
		break;
	case 5:	/* a program: up to 16 op bytes, then the body */
		if (len < 2)
			return;
		nops = data[1] % 16;
		if (len - 2 < nops)
			return;
		rd_init(&r, data + 2 + nops, len - 2 - nops);
		for (size_t i = 0; i < nops; i++) {
			uint8_t op = data[2 + i];
			size_t bound = (size_t)(op >> 3) + 1;

			switch (op & 7) {
			case 0:
			case 1:
				rd_u32(&c);
				break;
			case 2:
				rd_i64(&c);
				break;
			case 3:
			case 4:
				rd_str(&c, bound);
				break;
			case 5:
				rd_view(&c, bound - 1);
				break;
			default:
				rd_bytes(&c, bound - 1);
				break;
			}
		}
		break;
	}
	rd_end(&c);
	verdict("body", ipcr_end(&r) == 0);
}

/* ---- 5: a channel ---- */

struct stream {
	struct event_base	*base;
	size_t			 bytes;		/* headers and bodies delivered */
	int			 ended;
};

/* Each message to the reader of its type, as signerd.c and link.c do. */
static void
stream_msg(struct ipc *c, uint32_t type, uint64_t id, struct ipc_rd *r,
    void *arg)
{
	struct stream *s = arg;
	struct signer_job *job;
	struct rd_check rc = { r, 0 };

	(void)c;
	(void)id;
	FUZZ_CHECK(type >= IPC_HELLO && type < IPC_TYPE_MAX);
	FUZZ_CHECK(r->len <= IPC_BODY_MAX && r->off == 0 && !r->bad);
	FUZZ_CHECK(r->len == 0 || r->p != NULL);
	s->bytes += 16 + r->len;
	switch (type) {
	case IPC_JOB:
		job_drop(signer_job_unpack(r));
		break;
	case IPC_ANSWER:
		job = answer_job(SIGNER_ENROLL);
		(void)signer_answer_unpack(job, r);
		job_drop(job);
		break;
	case IPC_AUDIT:
		rd_str(&rc, 512);
		rd_str(&rc, 256);
		rd_str(&rc, HSMCA_ERRMSG_MAX);
		break;
	case IPC_ISSUER:
		rd_u32(&rc);
		break;
	case IPC_METRICS_ANSWER:
		(void)metrics_signer_unpack(r);
		break;
	case IPC_OCSP_ISSUER:
	case IPC_OCSP_PUT:
	case IPC_OCSP_EXPIRE:
		rd_i64(&rc);
		rd_view(&rc, IPC_BODY_MAX);
		break;
	default:
		break;
	}
	(void)ipcr_end(r);
}

static void
stream_end(struct ipc *c, const char *why, void *arg)
{
	struct stream *s = arg;

	(void)c;
	FUZZ_CHECK_REASON(why);
	s->ended = 1;
	event_base_loopbreak(s->base);
}

static void
fuzz_stream(const uint8_t *data, size_t len)
{
	struct stream s;
	struct ipc *c;
	unsigned char buf[FUZZ_STREAM_MAX];
	char why[128];
	uint32_t want = 0;
	size_t n;
	int sv[2];

	if (len > FUZZ_STREAM_MAX)
		len = FUZZ_STREAM_MAX;
	/* The blocking reader (the signer's first message). */
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	FUZZ_CHECK(len == 0 || write(sv[0], data, len) == (ssize_t)len);
	close(sv[0]);
	why[0] = '\0';
	if (len >= sizeof(want))
		memcpy(&want, data, sizeof(want));
	if (ipc_recv_one(sv[1], want, buf, sizeof(buf), &n, why,
	    sizeof(why)) == 0)
		FUZZ_CHECK(16 + n <= len);
	else
		FUZZ_CHECK_REASON(why);
	close(sv[1]);

	/* The channel: every whole message, then the end. */
	memset(&s, 0, sizeof(s));
	FUZZ_CHECK((s.base = event_base_new()) != NULL);
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	FUZZ_CHECK((c = ipc_new(s.base, sv[1], stream_msg, stream_end,
	    &s)) != NULL);
	FUZZ_CHECK(len == 0 || write(sv[0], data, len) == (ssize_t)len);
	close(sv[0]);
	while (!s.ended)
		FUZZ_CHECK(event_base_loop(s.base, EVLOOP_ONCE) == 0);
	FUZZ_CHECK(s.bytes <= len);
	if (verbose)
		fprintf(stderr, "fuzz_ipc: stream: %zu of %zu bytes in whole "
		    "messages\n", s.bytes, len);
	ipc_free(c);
	event_base_free(s.base);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len < 1)
		return 0;
	switch (data[0] % 6) {
	case 0:
		fuzz_job(data + 1, len - 1);
		break;
	case 1:
		fuzz_answer(data + 1, len - 1);
		break;
	case 2:
		fuzz_call(data + 1, len - 1);
		break;
	case 3:
		fuzz_metrics(data + 1, len - 1);
		break;
	case 4:
		fuzz_readers(data + 1, len - 1);
		break;
	case 5:
		fuzz_stream(data + 1, len - 1);
		break;
	}
	return 0;
}
