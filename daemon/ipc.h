/* ipc.h: messages between hsmcad's processes (parent, front, signer)
 * over a socketpair: a fixed header, then a body of typed fields that the
 * reader takes apart with every length checked (OpenBSD imsg, smaller).
 * A message that does not parse is fatal for the channel, never a
 * signature. */
#ifndef HSMCAD_IPC_H
#define HSMCAD_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

enum ipc_type {
	IPC_HELLO = 1,		/* signer -> front: logged in, store open */
	IPC_JOB,		/* front -> signer: a signer_job to run */
	IPC_ANSWER,		/* signer -> front: the job's answer */
	IPC_ABANDON,		/* front -> signer: answered already (503) */
	IPC_AUDIT,		/* front -> signer: record a refusal */
	IPC_ISSUER,		/* front -> signer: generations changed, or a
				   reload (body: u32 reload, then for a
				   reload the parent's fileset) */
	IPC_METRICS,		/* front -> signer: its signing counters */
	IPC_METRICS_ANSWER,	/* signer -> front */
	IPC_OCSP_ISSUER,	/* signer -> front: cache an issuer */
	IPC_OCSP_PUT,		/* signer -> front: cache a response */
	IPC_OCSP_EXPIRE,	/* signer -> front: drop lapsed unknowns */
	IPC_CONFIG,		/* parent -> front: SIGHUP, the configuration
				   and the files it names (a fileset) */
	IPC_TYPE_MAX
};

/* The largest body: an admin call with its files (48 MiB of request
 * body, base64) and its answer. */
#define IPC_BODY_MAX	(96U * 1024 * 1024)

/* ---- bodies ---- */

/* A body being built; a failed allocation sticks (failed = 1) and the
 * message is not sent. */
struct ipc_buf {
	unsigned char	*p;
	size_t		 len, cap;
	int		 failed;
};

void	ipcb_u32(struct ipc_buf *b, uint32_t v);
void	ipcb_i64(struct ipc_buf *b, int64_t v);
/* A length-prefixed byte string (p may be NULL when len is 0). */
void	ipcb_bytes(struct ipc_buf *b, const void *p, size_t len);
/* A NUL-terminated string, sent without its NUL. */
void	ipcb_str(struct ipc_buf *b, const char *s);
void	ipcb_free(struct ipc_buf *b);

/* A body being read: a read past the end or a field over its bound sets
 * bad; the caller checks it once, at the end, and every value read from
 * a bad body is zero or empty. */
struct ipc_rd {
	const unsigned char	*p;
	size_t			 len, off;
	int			 bad;
};

/* Read len bytes at p. */
void	 ipcr_init(struct ipc_rd *r, const void *p, size_t len);
uint32_t ipcr_u32(struct ipc_rd *r);
int64_t	 ipcr_i64(struct ipc_rd *r);
/* Into a fixed array of size bytes: fits with its NUL, no NUL inside. */
void	 ipcr_str(struct ipc_rd *r, char *dst, size_t size);
/* A malloc'd copy (NULL for an empty one) of at most max bytes. */
void	 ipcr_bytes(struct ipc_rd *r, unsigned char **out, size_t *len,
	    size_t max);
/* The same in place, valid while the message is. */
const unsigned char *ipcr_view(struct ipc_rd *r, size_t *len, size_t max);
/* A fileset (fileset.h), every file with its bytes or why it was not
 * read. ipcr_fileset: a new set, or NULL (out of memory, or a field out
 * of bounds: then bad is set). */
struct fileset;
void	 ipcb_fileset(struct ipc_buf *b, const struct fileset *fs);
struct fileset *ipcr_fileset(struct ipc_rd *r);
/* Every byte was read and nothing was out of bounds: 0, else -1. */
int	 ipcr_end(struct ipc_rd *r);

/* ---- channels ---- */

struct ipc;

/* One whole message; body is valid during the call. */
typedef void	ipc_msg_cb(struct ipc *, uint32_t type, uint64_t id,
		    struct ipc_rd *body, void *arg);
/* The peer closed the channel, or sent something that is not a message
 * (why says which). */
typedef void	ipc_end_cb(struct ipc *, const char *why, void *arg);

/* A channel on fd (a socketpair end, which it owns) on base. Sending is
 * safe from any thread. */
struct ipc	*ipc_new(struct event_base *base, int fd, ipc_msg_cb *msg,
		    ipc_end_cb *end, void *arg);
/* Queue a message: 0, or -1 (out of memory, or b->failed). */
int	ipc_send(struct ipc *c, uint32_t type, uint64_t id,
	    const struct ipc_buf *b);
/* A message the peer waits for: a body built by pack(arg, b), queued
 * and freed. One that cannot be queued (out of memory, or too large
 * for pack to mend) is fatal, what saying which. */
typedef void	ipc_pack_cb(void *arg, struct ipc_buf *b);
void	ipc_send_packed(struct ipc *c, uint32_t type, uint64_t id,
	    ipc_pack_cb *pack, void *arg, const char *what);
void	ipc_free(struct ipc *c);

/* Before a channel exists: wait for one message of type want on fd and
 * copy its body (at most max bytes) to buf. 0, or -1 with why. */
int	ipc_recv_one(int fd, uint32_t want, unsigned char *buf, size_t max,
	    size_t *len, char *why, size_t wlen);
/* And send one the same way (the signer's IPC_HELLO). */
int	ipc_send_one(int fd, uint32_t type, const struct ipc_buf *b);

#endif
