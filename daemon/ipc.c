/* ipc.c: framed messages between hsmcad's processes. A message is a
 * header (type, body length, id; host byte order: both ends are the same
 * binary on the same machine) and a body of fields, each a fixed-size
 * integer or a length-prefixed byte string. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>

#include "hsmca/err.h"
#include "hsmca/fileset.h"
#include "hsmca/util.h"

#include "ipc.h"
#include "log.h"

struct ipc_hdr {
	uint32_t	type;
	uint32_t	len;
	uint64_t	id;
};

struct ipc {
	struct bufferevent	*bev;
	ipc_msg_cb		*msg;
	ipc_end_cb		*end;
	void			*arg;
	int			 ended;
};

/* ---- bodies ---- */

static void
put(struct ipc_buf *b, const void *p, size_t n)
{
	unsigned char *np;
	size_t cap;

	if (b->failed || n == 0)
		return;
	if (n > IPC_BODY_MAX || b->len + n > IPC_BODY_MAX) {
		b->failed = 1;
		return;
	}
	if (b->len + n > b->cap) {
		cap = b->cap != 0 ? b->cap : 256;
		while (cap < b->len + n)
			cap *= 2;
		/* Not realloc: the block it leaves behind may hold a key
		 * (ipcb_free's reason), and it would not be wiped. */
		if ((np = malloc(cap)) == NULL) {
			b->failed = 1;
			return;
		}
		if (b->p != NULL) {
			memcpy(np, b->p, b->len);
			util_freezero(b->p, b->cap);
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void
ipcb_u32(struct ipc_buf *b, uint32_t v)
{
	put(b, &v, sizeof(v));
}

void
ipcb_i64(struct ipc_buf *b, int64_t v)
{
	put(b, &v, sizeof(v));
}

void
ipcb_bytes(struct ipc_buf *b, const void *p, size_t len)
{
	if (len > UINT32_MAX) {
		b->failed = 1;
		return;
	}
	ipcb_u32(b, (uint32_t)len);
	put(b, p, len);
}

void
ipcb_str(struct ipc_buf *b, const char *s)
{
	ipcb_bytes(b, s, s != NULL ? strlen(s) : 0);
}

void
ipcb_free(struct ipc_buf *b)
{
	/* Bodies carry keys (serverkeygen) and PINs never: wipe anyway. */
	if (b->p != NULL)
		util_freezero(b->p, b->cap);
	memset(b, 0, sizeof(*b));
}

static const unsigned char *
take(struct ipc_rd *r, size_t n)
{
	const unsigned char *p;

	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

void
ipcb_fileset(struct ipc_buf *b, const struct fileset *fs)
{
	ipcb_u32(b, (uint32_t)fs->n);
	for (size_t i = 0; i < fs->n; i++) {
		const struct fileset_file *f = &fs->v[i];

		ipcb_str(b, f->path);
		ipcb_u32(b, (uint32_t)f->errnum);
		ipcb_str(b, f->why != NULL ? f->why : "");
		ipcb_u32(b, f->data != NULL);
		ipcb_bytes(b, f->data, f->data != NULL ? f->len : 0);
	}
}

/* A configuration names a few files: a bound on what a peer can make us
 * allocate before the first byte of them. */
#define IPC_FILESET_MAX	1024

struct fileset *
ipcr_fileset(struct ipc_rd *r)
{
	struct fileset *fs;
	struct hsmca_err e;
	char path[PATH_MAX], why[HSMCA_ERRMSG_MAX];
	const unsigned char *data;
	uint32_t n, errnum, has;
	size_t len;

	if ((n = ipcr_u32(r)) > IPC_FILESET_MAX || r->bad) {
		r->bad = 1;
		return NULL;
	}
	if ((fs = fileset_new()) == NULL)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		ipcr_str(r, path, sizeof(path));
		errnum = ipcr_u32(r);
		ipcr_str(r, why, sizeof(why));
		has = ipcr_u32(r);
		data = ipcr_view(r, &len, FILESET_FILE_MAX);
		/* Read, or not with a reason; each path once. */
		if (r->bad || has > 1 || (has && errnum != 0) ||
		    (!has && (errnum == 0 || why[0] == '\0')) ||
		    fileset_get(fs, path) != NULL) {
			r->bad = 1;
			break;
		}
		if (fileset_put(fs, path, has ? (data != NULL ? data :
		    (const unsigned char *)"") : NULL, len, (int)errnum,
		    has ? NULL : why, &e) != 0)
			break;
	}
	if (r->bad || fs->n != n) {
		fileset_free(fs);
		return NULL;
	}
	return fs;
}

void
ipcr_init(struct ipc_rd *r, const void *p, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->p = p;
	r->len = len;
}

uint32_t
ipcr_u32(struct ipc_rd *r)
{
	const unsigned char *p = take(r, sizeof(uint32_t));
	uint32_t v = 0;

	if (p != NULL)
		memcpy(&v, p, sizeof(v));
	return v;
}

int64_t
ipcr_i64(struct ipc_rd *r)
{
	const unsigned char *p = take(r, sizeof(int64_t));
	int64_t v = 0;

	if (p != NULL)
		memcpy(&v, p, sizeof(v));
	return v;
}

const unsigned char *
ipcr_view(struct ipc_rd *r, size_t *len, size_t max)
{
	uint32_t n = ipcr_u32(r);
	const unsigned char *p;

	*len = 0;
	if (r->bad || n > max) {
		r->bad = 1;
		return NULL;
	}
	if ((p = take(r, n)) == NULL)
		return NULL;
	*len = n;
	return p;
}

void
ipcr_str(struct ipc_rd *r, char *dst, size_t size)
{
	const unsigned char *p;
	size_t n;

	dst[0] = '\0';
	if ((p = ipcr_view(r, &n, size - 1)) == NULL)
		return;
	if (memchr(p, '\0', n) != NULL) {
		r->bad = 1;
		return;
	}
	memcpy(dst, p, n);
	dst[n] = '\0';
}

void
ipcr_bytes(struct ipc_rd *r, unsigned char **out, size_t *len, size_t max)
{
	const unsigned char *p;
	size_t n;

	*out = NULL;
	*len = 0;
	if ((p = ipcr_view(r, &n, max)) == NULL || n == 0)
		return;
	if ((*out = malloc(n)) == NULL) {
		r->bad = 1;
		return;
	}
	memcpy(*out, p, n);
	*len = n;
}

int
ipcr_end(struct ipc_rd *r)
{
	return r->bad || r->off != r->len ? -1 : 0;
}

/* ---- channels ---- */

static void
ipc_ended(struct ipc *c, const char *why)
{
	if (c->ended)
		return;
	c->ended = 1;
	bufferevent_disable(c->bev, EV_READ);
	c->end(c, why, c->arg);
}

/* A body may carry a key (an IPC_ANSWER of serverkeygen). Reading one
 * leaves no copy that is not wiped: a body in one chain is read where it
 * is, one spread over several is copied out (evbuffer_pullup would
 * gather it into a new chain and free the old ones unwiped) into *copy,
 * which the caller wipes; the chains are wiped before they are drained. */
static const unsigned char *
ipc_body(struct evbuffer *in, size_t len, unsigned char **copy)
{
	struct evbuffer_iovec v;

	*copy = NULL;
	if (evbuffer_peek(in, (ev_ssize_t)len, NULL, &v, 1) == 1 &&
	    v.iov_len >= len)
		return v.iov_base;
	if ((*copy = malloc(len)) == NULL ||
	    evbuffer_copyout(in, *copy, len) != (ev_ssize_t)len) {
		free(*copy);
		*copy = NULL;
		return NULL;
	}
	return *copy;
}

/* Wipe the first len bytes of in where they lie, chain by chain. */
static void
ipc_wipe(struct evbuffer *in, size_t len)
{
	struct evbuffer_iovec v[8];
	struct evbuffer_ptr at;
	int i, n;

	if (evbuffer_ptr_set(in, &at, 0, EVBUFFER_PTR_SET) != 0)
		return;
	while (len > 0 && (n = evbuffer_peek(in, (ev_ssize_t)len, &at, v,
	    8)) > 0) {
		for (i = 0; i < n && i < 8 && len > 0; i++) {
			size_t k = v[i].iov_len < len ? v[i].iov_len : len;

			OPENSSL_cleanse(v[i].iov_base, k);
			len -= k;
			if (evbuffer_ptr_set(in, &at, k, EVBUFFER_PTR_ADD) != 0)
				return;
		}
	}
}

static void
ipc_readcb(struct bufferevent *bev, void *arg)
{
	struct ipc *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct ipc_hdr h;
	struct ipc_rd r;
	unsigned char *copy;

	while (!c->ended && evbuffer_get_length(in) >= sizeof(h)) {
		evbuffer_copyout(in, &h, sizeof(h));
		if (h.type == 0 || h.type >= IPC_TYPE_MAX ||
		    h.len > IPC_BODY_MAX) {
			ipc_ended(c, "a message that is not one");
			return;
		}
		if (evbuffer_get_length(in) < sizeof(h) + h.len) {
			/* Wait for the rest, and no more than the rest. */
			bufferevent_setwatermark(bev, EV_READ,
			    sizeof(h) + h.len, 0);
			return;
		}
		bufferevent_setwatermark(bev, EV_READ, 0, 0);
		evbuffer_drain(in, sizeof(h));
		memset(&r, 0, sizeof(r));
		r.len = h.len;
		copy = NULL;
		if (h.len > 0 && (r.p = ipc_body(in, h.len, &copy)) == NULL) {
			ipc_ended(c, "out of memory");
			return;
		}
		c->msg(c, h.type, h.id, &r, c->arg);
		ipc_wipe(in, h.len);
		evbuffer_drain(in, h.len);
		if (copy != NULL)
			util_freezero(copy, h.len);
	}
}

static void
ipc_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct ipc *c = arg;

	if (what & BEV_EVENT_EOF)
		ipc_ended(c, "closed");
	else if (what & BEV_EVENT_ERROR)
		ipc_ended(c, strerror(EVUTIL_SOCKET_ERROR()));
}

struct ipc *
ipc_new(struct event_base *base, int fd, ipc_msg_cb *msg, ipc_end_cb *end,
    void *arg)
{
	struct ipc *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (evutil_make_socket_nonblocking(fd) != 0 ||
	    (c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_THREADSAFE)) == NULL) {
		free(c);
		return NULL;
	}
	c->msg = msg;
	c->end = end;
	c->arg = arg;
	bufferevent_setcb(c->bev, ipc_readcb, NULL, ipc_eventcb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
}

static void
ipc_block_free(const void *data, size_t len, void *arg)
{
	util_freezero((void *)(uintptr_t)data, len);
}

int
ipc_send(struct ipc *c, uint32_t type, uint64_t id, const struct ipc_buf *b)
{
	struct evbuffer *out;
	struct ipc_hdr h;
	unsigned char *m;
	int ret;

	if (b != NULL && b->failed)
		return -1;
	memset(&h, 0, sizeof(h));
	h.type = type;
	h.len = b != NULL ? (uint32_t)b->len : 0;
	h.id = id;
	/* Header and body in one block, added by reference: together or
	 * not at all, and never copied into libevent's chains, which it
	 * frees unwiped; ipc_block_free wipes the block when the message
	 * is written or the channel is freed. */
	if ((m = malloc(sizeof(h) + h.len)) == NULL)
		return -1;
	memcpy(m, &h, sizeof(h));
	if (h.len > 0)
		memcpy(m + sizeof(h), b->p, h.len);
	bufferevent_lock(c->bev);
	out = bufferevent_get_output(c->bev);
	ret = evbuffer_add_reference(out, m, sizeof(h) + h.len, ipc_block_free,
	    NULL);
	bufferevent_unlock(c->bev);
	if (ret != 0)
		util_freezero(m, sizeof(h) + h.len);
	return ret != 0 ? -1 : 0;
}

void
ipc_send_packed(struct ipc *c, uint32_t type, uint64_t id, ipc_pack_cb *pack,
    void *arg, const char *what)
{
	struct ipc_buf b;

	memset(&b, 0, sizeof(b));
	pack(arg, &b);
	if (ipc_send(c, type, id, &b) != 0)
		fatalx("%s", what);
	ipcb_free(&b);
}

void
ipc_free(struct ipc *c)
{
	if (c == NULL)
		return;
	bufferevent_free(c->bev);
	free(c);
}

/* ---- one message, blocking ---- */

static int
read_full(int fd, void *p, size_t n)
{
	unsigned char *q = p;
	ssize_t r;

	while (n > 0) {
		if ((r = read(fd, q, n)) == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		q += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
write_full(int fd, const void *p, size_t n)
{
	const unsigned char *q = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, q, n)) == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int
ipc_recv_one(int fd, uint32_t want, unsigned char *buf, size_t max,
    size_t *len, char *why, size_t wlen)
{
	struct ipc_hdr h;

	if (read_full(fd, &h, sizeof(h)) != 0) {
		snprintf(why, wlen, "the channel closed");
		return -1;
	}
	if (h.type != want || h.len > max) {
		snprintf(why, wlen, "an unexpected message (type %u, %u bytes)",
		    h.type, h.len);
		return -1;
	}
	if (read_full(fd, buf, h.len) != 0) {
		snprintf(why, wlen, "the channel closed");
		return -1;
	}
	*len = h.len;
	return 0;
}

int
ipc_send_one(int fd, uint32_t type, const struct ipc_buf *b)
{
	struct ipc_hdr h;

	if (b != NULL && b->failed)
		return -1;
	memset(&h, 0, sizeof(h));
	h.type = type;
	h.len = b != NULL ? (uint32_t)b->len : 0;
	if (write_full(fd, &h, sizeof(h)) != 0 ||
	    (h.len > 0 && write_full(fd, b->p, h.len) != 0))
		return -1;
	return 0;
}
