/* metrics.h: counters for GET /metrics, safe from any thread. */
#ifndef HSMCAD_METRICS_H
#define HSMCAD_METRICS_H

struct hsmcad;
struct evhttp_request;

/* An EST enrollment answered: 200 counts as issued under profile,
 * anything else as refused for the reason its status names. */
void	metrics_request(const char *profile, int status);
/* Around one signing pass of a signer worker: the n issuances it made
 * together, each of which took seconds (hsm_error[i]: failed in the
 * HSM). */
void	metrics_sign_begin(void);
void	metrics_sign_end(double seconds, const int *hsm_error, size_t n);
/* A sweep marked n reservations left behind failed (sweep.c). */
void	metrics_swept(size_t n);
/* On the loop: answer GET /metrics (the signer's counters are asked
 * for first: metrics_reply answers once they are in). */
void	metrics_handle(struct hsmcad *d, struct evhttp_request *req);
void	metrics_reply(struct hsmcad *d, struct evhttp_request *req);
/* The signer's counters on the wire: packed in the signer process,
 * unpacked in the front (0, or -1 if they do not parse). */
struct ipc_buf;
struct ipc_rd;
void	metrics_signer_pack(struct ipc_buf *b);
int	metrics_signer_unpack(struct ipc_rd *r);

#endif
