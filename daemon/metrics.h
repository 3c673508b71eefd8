/* metrics.h: counters for GET /metrics, safe from any thread. */
#ifndef HSMCAD_METRICS_H
#define HSMCAD_METRICS_H

struct hsmcad;
struct evhttp_request;

/* An EST enrollment answered: 200 counts as issued under profile,
 * anything else as refused for the reason its status names. */
void	metrics_request(const char *profile, int status);
/* Around one issuance on a signer worker. */
void	metrics_sign_begin(void);
void	metrics_sign_end(double seconds, int hsm_error);
/* On the loop: answer GET /metrics. */
void	metrics_handle(struct hsmcad *d, struct evhttp_request *req);

#endif
