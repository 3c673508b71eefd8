/* crl.c (hsmcad): the CRL of every generation a relying party may meet,
 * served over plain HTTP at the URL issued certificates carry
 * (/crl/GEN.crl), and of every root whose key is in the token. CRLs are
 * signed on the signer (the token), never on the event loop. A timer
 * rebuilds a CRL when what it lists has changed (the store's revocation
 * version of the generation: a revocation by `hsmca revoke`, a hold, a
 * release, a new reason, shows up within crl-delay, and a burst of them
 * becomes one CRL), and when half of its validity (crl-next-update) has
 * passed. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "hsmca/ca.h"
#include "hsmca/clock.h"

#include "hsmcad.h"
#include "log.h"

static struct crl_cache *
crl_slot(struct hsmcad *d, int64_t gen_id)
{
	struct crl_cache *v;

	for (size_t i = 0; i < d->ncrls; i++)
		if (d->crls[i].gen_id == gen_id)
			return &d->crls[i];
	if ((v = reallocarray(d->crls, d->ncrls + 1, sizeof(*v))) == NULL)
		return NULL;
	d->crls = v;
	memset(&v[d->ncrls], 0, sizeof(v[0]));
	v[d->ncrls].gen_id = gen_id;
	return &v[d->ncrls++];
}

static void
crl_built(struct signer_job *job, void *arg)
{
	struct hsmcad *d = arg;
	struct crl_cache *c = crl_slot(d, job->gen_id);

	if (c == NULL) {
		signer_job_free(job);
		return;
	}
	c->building = 0;
	if (job->status != 200) {
		log_warnx("CRL of generation %lld: %s", (long long)job->gen_id,
		    job->reason);
	} else {
		free(c->der);
		c->der = job->p7_der;
		c->len = job->p7_len;
		job->p7_der = NULL;
		c->this_update = job->this_update;
		c->next_update = job->next_update;
		c->number = job->crl_number;
		c->version_seen = c->version_want;
		log_info("CRL of generation %lld: number %lld (revocation "
		    "version %lld)", (long long)c->gen_id,
		    (long long)c->number, (long long)c->version_seen);
	}
	signer_job_free(job);
}

static void
crl_tick(evutil_socket_t fd, short what, void *arg)
{
	struct hsmcad *d = arg;
	struct store_generation *v = NULL;
	size_t n = 0;
	time_t now = clock_now();

	if (d->draining || store_list_generations(d->st, &v, &n, NULL) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		enum store_gen_status st = ca_effective_status(&v[i], now);
		struct crl_cache *c;
		struct signer_job *job;
		int64_t version;

		/* Issuing generations a relying party may meet, and roots
		 * whose key is in the token (their CRL lists the revoked
		 * generations they certified). */
		if (v[i].cert_der == NULL || (v[i].kind == STORE_GEN_ROOT ?
		    v[i].key_uri == NULL || st == STORE_GEN_EXPIRED :
		    st != STORE_GEN_ACTIVE && st != STORE_GEN_INACTIVE &&
		    st != STORE_GEN_REVOKED))
			continue;
		if ((c = crl_slot(d, v[i].id)) == NULL || c->building ||
		    store_revocation_version(d->st, v[i].id, &version,
		    NULL) != 0)
			continue;
		if (c->der != NULL && version == c->version_seen &&
		    now < c->this_update + (c->next_update - c->this_update) / 2)
			continue;
		if ((job = calloc(1, sizeof(*job))) == NULL)
			continue;
		job->op = SIGNER_CRL;
		job->gen_id = v[i].id;
		job->rt = runtime_ref(d->rt);
		job->done = crl_built;
		job->arg = d;
		c->building = 1;
		c->version_want = version;
		link_submit(d->link, job);
	}
	store_generations_free(v, n);
}

int
crl_serve_start(struct hsmcad *d, struct hsmca_err *e)
{
	/* [daemon] crl-delay: how soon a revocation reaches the CRL; every
	 * revocation within one period shares a CRL. */
	struct timeval tv = { (time_t)d->rt->cfg->daemon.crl_delay, 0 };

	if ((d->crl_ev = event_new(d->base, -1, EV_PERSIST, crl_tick, d)) == NULL ||
	    event_add(d->crl_ev, &tv) != 0)
		return err_set(e, HSMCA_ERR_INTERNAL, "CRL timer");
	crl_tick(-1, 0, d);	/* the first CRLs now */
	return 0;
}

void
crl_serve_stop(struct hsmcad *d)
{
	if (d->crl_ev != NULL)
		event_free(d->crl_ev);
	for (size_t i = 0; i < d->ncrls; i++)
		free(d->crls[i].der);
	free(d->crls);
	d->crls = NULL;
	d->ncrls = 0;
}

/* GET /crl/GEN.crl: the DER CRL (application/pkix-crl, RFC 5280 4.2.1.13). */
void
crl_handle(struct evhttp_request *req, void *arg)
{
	struct hsmcad *d = arg;
	const char *uri = http_target(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *body;
	long long gen;
	char tail[8] = "";
	int status = 404;
	const char *reason = "not found";

	/* Every method reaches here (hsmcad.c front_http), one libevent
	 * does not know too; a HEAD is a GET without the body. */
	if (http_method_unknown(req)) {
		status = 501;
		reason = "unknown method: GET and HEAD (CRLs, OCSP), POST "
		    "(OCSP) only";
	} else if (strncmp(uri, "/ocsp", 5) == 0 &&
	    (uri[5] == '\0' || uri[5] == '/')) {
		ocsp_handle(req, arg);
		return;
	} else if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		status = 405;
		reason = "GET (or HEAD) only";
		http_method_refused(req, "GET, HEAD");
	} else if (sscanf(uri, "/crl/%lld%7s", &gen, tail) == 2 &&
	    strcmp(tail, ".crl") == 0) {
		for (size_t i = 0; i < d->ncrls; i++) {
			if (d->crls[i].gen_id != gen || d->crls[i].der == NULL)
				continue;
			if ((body = evbuffer_new()) == NULL)
				break;
			evbuffer_add(body, d->crls[i].der, d->crls[i].len);
			evhttp_add_header(evhttp_request_get_output_headers(req),
			    "Content-Type", "application/pkix-crl");
			http_reply(req, 200, "OK", body);
			evbuffer_free(body);
			log_info("client=- %s %.100s 200 crl %lld",
			    http_method_name(cmd), uri,
			    (long long)d->crls[i].number);
			return;
		}
		reason = "no CRL for that generation (yet)";
	}
	http_text(req, status, http_status_phrase(status), reason);
	log_info("client=- %s %.100s %d", http_method_name(cmd), uri, status);
}
