/* batch-remote.c: hsmca batch sign --server: a factory station signs its
 * batch through hsmcad's admin API. The steps are lib/batch.c's local
 * ones, run by the daemon for the operator (POST /api/v1/batch/STEP);
 * every worker keeps its own mutual TLS connection alive, so --jobs
 * requests are in flight at once, each signing a chunk of up to
 * BATCH_CHUNK_MAX CSRs. The appliance checks every CSR again when it
 * signs it (so a separate check call is made only for --fail-fast) and
 * answers with the certificate already issued for it when there is one,
 * so a re-run finishes a batch here as in local mode. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/x509.h>

#include "hsmca/batch.h"
#include "hsmca/util.h"

#include "cli.h"
#include "est-client.h"

#define REMOTE_REPLY_MAX	(1024 * 1024)

struct batch_remote {
	const char	*server, *cert, *key, *cacert;
	struct est_client *main;	/* begin, end */
	int64_t		 batch_id;
	int64_t		 generation;	/* whose chain begin gave; 0: not said */
	int		 denied;	/* begin got 401 or 403 */
};

struct remote_worker {
	struct batch_remote	*r;
	struct est_client	*ec;
};

static int
remote_client(struct batch_remote *r, struct est_client **out,
    struct hsmca_err *e)
{
	int ret;

	if ((ret = est_client_new(r->server, NULL, r->cacert, r->cert, r->key,
	    out, e)) != 0)
		return ret;
	if ((ret = est_client_set_path(*out, "/api/v1/batch/",
	    REMOTE_REPLY_MAX, e)) != 0) {
		est_client_free(*out);
		*out = NULL;
		return ret;
	}
	est_client_keepalive(*out);
	return 0;
}

/* POST one step; *reply the JSON object of a 200 answer. A request
 * whose answer was lost (the connection, a timeout) or is not one fails
 * with HSMCA_ERR_IO, never a refusal: the appliance may have signed. */
static int
remote_call(struct est_client *ec, const char *step, json_t *req,
    json_t **reply, int *denied, struct hsmca_err *e)
{
	struct est_reply r;
	json_t *o = NULL, *m;
	char *body;
	int ret;

	*reply = NULL;
	if ((body = json_dumps(req, JSON_COMPACT)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	ret = est_client_request(ec, "POST", step, "application/json", body,
	    strlen(body), &r, e);
	free(body);
	if (ret != 0) {
		char why[HSMCA_ERRMSG_MAX];

		snprintf(why, sizeof(why), "%s", e->msg);
		return err_set(e, ret == HSMCA_ERR_ALLOC ? ret : HSMCA_ERR_IO,
		    "batch %s: no answer from the appliance (%s); run the "
		    "batch again", step, why);
	}
	o = json_loadb((const char *)r.body, r.len, 0, NULL);
	if (r.status != 200) {
		m = o != NULL ? json_object_get(o, "error") : NULL;
		if (denied != NULL && (r.status == 401 || r.status == 403))
			*denied = 1;
		ret = err_set(e, r.status == 503 ? HSMCA_ERR_HSM_UNAVAILABLE :
		    HSMCA_ERR_IO,
		    "the admin API refused batch %s (%d): %s", step, r.status,
		    m != NULL && json_is_string(m) ? json_string_value(m) :
		    r.reason);
		json_decref(o);
	} else if (!json_is_object(o)) {
		ret = err_set(e, HSMCA_ERR_IO, "the answer to batch %s is not "
		    "a JSON object", step);
		json_decref(o);
	} else
		*reply = o;
	est_reply_free(&r);
	return ret;
}

/* A CSR's outcome as the appliance gave it: 0, or a refusal (a code
 * batch_is_refusal counts as one) or a failure, with its reason. */
static int
remote_outcome(json_t *o, struct hsmca_err *e)
{
	const char *status = json_string_value(json_object_get(o, "status"));
	const char *reason = json_string_value(json_object_get(o, "reason"));

	if (status == NULL)
		return err_set(e, HSMCA_ERR_IO, "the answer has no status");
	if (strcmp(status, "refused") == 0)
		return err_set(e, HSMCA_ERR_POLICY, "%s", reason != NULL ?
		    reason : "refused");
	if (strcmp(status, "failed") == 0)
		return err_set(e, HSMCA_ERR_HSM_UNAVAILABLE, "%s",
		    reason != NULL ? reason : "failed");
	return 0;
}

static json_t *
csr_json(const struct batch_item *it, int64_t batch_id, struct hsmca_err *e)
{
	unsigned char *der = NULL;
	char *b64 = NULL;
	size_t b64len;
	json_t *o = NULL;
	int len;

	if ((len = i2d_X509_REQ(it->csr->req, &der)) <= 0) {
		err_set(e, HSMCA_ERR_INTERNAL, "cannot encode the CSR");
		return NULL;
	}
	if (util_b64_encode(der, (size_t)len, &b64, &b64len, e) == 0)
		o = json_pack("{s:I, s:s, s:s, s:s}", "batch",
		    (json_int_t)batch_id, "device", it->device, "profile",
		    it->profile->name, "csr", b64);
	OPENSSL_free(der);
	free(b64);
	if (o == NULL && e->code == 0)
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	return o;
}

/* A sign request names the generation whose chain begin gave, so that a
 * certificate of another (the CA rotated during the batch, or an earlier
 * generation issued it) comes back with its own chain. */
static json_t *
with_generation(json_t *req, const struct batch_remote *r)
{
	if (req != NULL && r->generation > 0 && json_object_set_new(req,
	    "generation", json_integer((json_int_t)r->generation)) != 0) {
		json_decref(req);
		return NULL;
	}
	return req;
}

static int
remote_begin(void *ctx, const char *sha256, const char *profile, size_t items,
    int64_t *batch_id, char **chain_pem, struct hsmca_err *e)
{
	struct batch_remote *r = ctx;
	json_t *req, *rep = NULL, *v;
	int ret;

	*chain_pem = NULL;
	if ((ret = remote_client(r, &r->main, e)) != 0)
		return ret;
	req = json_pack("{s:s, s:s, s:I}", "sha256", sha256, "profile",
	    profile, "items", (json_int_t)items);
	ret = remote_call(r->main, "begin", req, &rep, &r->denied, e);
	json_decref(req);
	if (ret != 0)
		return ret;
	if (!json_is_integer(v = json_object_get(rep, "batch")) ||
	    !json_is_string(json_object_get(rep, "chain"))) {
		json_decref(rep);
		return err_set(e, HSMCA_ERR_IO, "the answer to batch begin has "
		    "no batch id or chain");
	}
	r->batch_id = *batch_id = (int64_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(rep, "generation")))
		r->generation = (int64_t)json_integer_value(v);
	*chain_pem = strdup(json_string_value(json_object_get(rep, "chain")));
	json_decref(rep);
	if (*chain_pem == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	return 0;
}

static int
remote_worker_open(void *ctx, void **out, struct hsmca_err *e)
{
	struct remote_worker *w;
	int ret;

	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	w->r = ctx;
	if ((ret = remote_client(w->r, &w->ec, e)) != 0) {
		free(w);
		return ret;
	}
	*out = w;
	return 0;
}

static void
remote_worker_close(void *arg)
{
	struct remote_worker *w = arg;

	est_client_free(w->ec);
	free(w);
}

/* The appliance's own check (profile, disallow list, the certificate
 * already issued, the pre-sign lint), before anything is signed, as in
 * local mode with fail_fast: the only time it is asked. */
static int
remote_check(void *arg, const struct batch_item *it, int fail_fast,
    struct hsmca_err *e)
{
	struct remote_worker *w = arg;
	json_t *req, *rep = NULL;
	int ret;

	(void)fail_fast;
	if ((req = csr_json(it, w->r->batch_id, e)) == NULL)
		return e->code;
	ret = remote_call(w->ec, "check", req, &rep, NULL, e);
	json_decref(req);
	if (ret == 0)
		ret = remote_outcome(rep, e);
	json_decref(rep);
	return ret;
}

/* One CSR's answer to sign: its certificate, or its refusal. */
static int
remote_cert(json_t *rep, const struct batch_item *it, struct batch_cert *out,
    struct hsmca_err *e)
{
	const char *status, *serial, *sha256, *pem, *chain;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = remote_outcome(rep, e)) != 0)
		return ret;
	status = json_string_value(json_object_get(rep, "status"));
	serial = json_string_value(json_object_get(rep, "serial"));
	sha256 = json_string_value(json_object_get(rep, "sha256"));
	pem = json_string_value(json_object_get(rep, "pem"));
	chain = json_string_value(json_object_get(rep, "chain"));
	if (serial == NULL || sha256 == NULL || pem == NULL ||
	    strlen(serial) >= sizeof(out->serial) ||
	    strlen(sha256) >= sizeof(out->sha256) ||
	    (strcmp(status, "issued") != 0 && strcmp(status, "existing") != 0))
		return err_set(e, HSMCA_ERR_IO, "the answer to batch sign for "
		    "%s is incomplete", it->device);
	if ((out->pem = strdup(pem)) == NULL ||
	    (chain != NULL && (out->chain = strdup(chain)) == NULL)) {
		batch_cert_free_fields(out);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	out->status = strcmp(status, "existing") == 0 ? BATCH_EXISTING :
	    BATCH_ISSUED;
	snprintf(out->serial, sizeof(out->serial), "%s", serial);
	snprintf(out->sha256, sizeof(out->sha256), "%s", sha256);
	return 0;
}

static int
remote_sign(void *arg, const struct batch_item *it, struct batch_cert *out,
    struct hsmca_err *e)
{
	struct remote_worker *w = arg;
	json_t *req, *rep = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((req = with_generation(csr_json(it, w->r->batch_id, e),
	    w->r)) == NULL)
		return e->code != 0 ? e->code : err_set(e, HSMCA_ERR_ALLOC,
		    "out of memory");
	ret = remote_call(w->ec, "sign", req, &rep, NULL, e);
	json_decref(req);
	if (ret == 0)
		ret = remote_cert(rep, it, out, e);
	json_decref(rep);
	return ret;
}

/* Up to BATCH_CHUNK_MAX CSRs in one request ("csrs"), signed together
 * on the appliance; one result each, in order. */
static void
remote_sign_chunk(void *arg, struct batch_item *const *items, size_t n,
    struct batch_cert *out, int *rets, struct hsmca_err *errs)
{
	struct remote_worker *w = arg;
	struct hsmca_err e;
	json_t *req = NULL, *a, *o, *rep = NULL, *res;
	size_t i;
	int ret = 0;

	err_clear(&e);
	for (i = 0; i < n; i++)
		memset(&out[i], 0, sizeof(out[i]));
	if (n > BATCH_CHUNK_MAX) {
		ret = err_set(&e, HSMCA_ERR_INTERNAL, "chunk of %zu CSRs", n);
		goto out;
	}
	if ((req = with_generation(json_pack("{s:I, s:s, s:[]}", "batch",
	    (json_int_t)w->r->batch_id, "profile", items[0]->profile->name,
	    "csrs"), w->r)) == NULL) {
		ret = err_set(&e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	a = json_object_get(req, "csrs");
	for (i = 0; i < n; i++) {
		if ((o = csr_json(items[i], w->r->batch_id, &e)) == NULL) {
			ret = e.code;
			goto out;
		}
		json_object_del(o, "batch");
		if (json_array_append_new(a, o) != 0) {
			ret = err_set(&e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	}
	if ((ret = remote_call(w->ec, "sign", req, &rep, NULL, &e)) != 0)
		goto out;
	res = json_object_get(rep, "results");
	if (!json_is_array(res) || json_array_size(res) != n) {
		ret = err_set(&e, HSMCA_ERR_IO, "the answer to batch sign has "
		    "no results for its %zu CSRs", n);
		goto out;
	}
	for (i = 0; i < n; i++) {
		err_clear(&errs[i]);
		rets[i] = remote_cert(json_array_get(res, i), items[i],
		    &out[i], &errs[i]);
	}
out:
	/* The request as a whole failed: so did each of its CSRs. */
	for (i = 0; ret != 0 && i < n; i++) {
		batch_cert_free_fields(&out[i]);
		memset(&out[i], 0, sizeof(out[i]));
		rets[i] = ret;
		errs[i] = e;
	}
	json_decref(req);
	json_decref(rep);
}

static void
remote_refused(void *arg, const struct batch_item *it)
{
	struct remote_worker *w = arg;
	struct hsmca_err e;
	json_t *req, *rep = NULL;

	req = json_pack("{s:I, s:s, s:s}", "batch", (json_int_t)w->r->batch_id,
	    "device", it->device, "reason", it->reason != NULL ? it->reason :
	    "refused");
	/* Best effort, as in local mode: results.csv has it too. */
	if (req != NULL && remote_call(w->ec, "refused", req, &rep, NULL,
	    &e) == 0)
		json_decref(rep);
	json_decref(req);
}

static int
remote_end(void *ctx, int outcome, const char *summary, size_t signed_,
    size_t refused, struct hsmca_err *e)
{
	struct batch_remote *r = ctx;
	json_t *req, *rep = NULL;
	int ret;

	req = json_pack("{s:I, s:i, s:s, s:I, s:I}", "batch",
	    (json_int_t)r->batch_id, "outcome", outcome, "summary", summary,
	    "signed", (json_int_t)signed_, "refused", (json_int_t)refused);
	ret = remote_call(r->main, "end", req, &rep, NULL, e);
	json_decref(req);
	json_decref(rep);
	return ret;
}

static const struct batch_signer batch_remote_signer = {
	.name = "remote",
	.begin = remote_begin,
	.worker_open = remote_worker_open,
	.check = remote_check,
	.sign = remote_sign,
	.sign_chunk = remote_sign_chunk,
	.sign_checks = 1,
	.refused = remote_refused,
	.worker_close = remote_worker_close,
	.end = remote_end,
};

int
cli_batch_remote_run(struct cli *c, struct batch *b,
    const struct batch_opts *o, int *denied)
{
	struct batch_remote r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.server = c->server;
	r.cert = c->server_cert;
	r.key = c->server_key;
	r.cacert = c->server_ca;
	if (r.cert == NULL || r.key == NULL)
		return err_set(&c->err, HSMCA_ERR_ARG, "the admin API needs the "
		    "operator's certificate and key (--cert and --key, or "
		    "[remote] cert and key)");
	ret = batch_run(b, &batch_remote_signer, &r, o, &c->err);
	est_client_free(r.main);
	*denied = r.denied;
	return ret;
}
