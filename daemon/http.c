/* http.c (hsmcad): what every handler of the front answers alike. Every
 * method reaches the handlers (hsmcad.c front_http); each answers a HEAD
 * where it serves a GET, through http_reply, refuses a method it does not
 * serve with a 405 and an Allow, and one libevent does not know with a
 * 501; after either refusal the connection closes. Every answer says in
 * one Connection header whether the connection stays open. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>	/* the request's HTTP version */
#include <event2/util.h>

#include "hsmcad.h"

static const struct {
	int		 status;
	const char	*phrase;
} http_phrases[] = {
	{ 200, "OK" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 409, "Conflict" },
	{ 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 503, "Service Unavailable" },
};

const char *
http_status_phrase(int status)
{
	for (size_t i = 0; i < sizeof(http_phrases) / sizeof(http_phrases[0]);
	    i++)
		if (http_phrases[i].status == status)
			return http_phrases[i].phrase;
	return "Error";
}

const char *
http_method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "?";
	}
}

const char *
http_target(struct evhttp_request *req)
{
	const char *uri = evhttp_request_get_uri(req), *p;
	size_t n;

	if (uri == NULL)
		return "";
	if (uri[0] == '/' || (p = strstr(uri, "://")) == NULL)
		return uri;
	/* The authority ends at the path, the query or the fragment. */
	p += 3;
	n = strcspn(p, "/?#");
	return p[n] == '/' ? p + n : "/";
}

int
http_method_unknown(struct evhttp_request *req)
{
	if (strcmp(http_method_name(evhttp_request_get_command(req)), "?") != 0)
		return 0;
	/* evhttp read no body for it: bytes of one would be read as the
	 * next request. */
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
	    "close");
	return 1;
}

/* libevent reads no body for some methods it knows either (Debian 12's
 * 2.1.12: HEAD and TRACE; which ones differs between its releases): a
 * refused one's body would be parsed as the next request. The
 * connection closes after every refused method, body or not: no header
 * (Content-Length, Transfer-Encoding, either malformed) has to be
 * judged, nothing hangs on which methods a libevent reads bodies for,
 * and a client that used the wrong method loses one connection. */
void
http_method_refused(struct evhttp_request *req, const char *allow)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Allow", allow);
	evhttp_add_header(h, "Connection", "close");
}

/* One Connection header that says what evhttp does after the answer.
 * libevent 2.1.12 (http.c: evhttp_send_done) closes the connection
 * after an HTTP/1.0 request without "Connection: keep-alive" and after
 * a request or an answer with "Connection: close", and keeps it
 * otherwise; the tests here are its own. To an HTTP/1.0 request with
 * keep-alive it adds "Connection: keep-alive" to the answer whatever it
 * then does (evhttp_make_header_response), so a refusal that closed said
 * both close and keep-alive; to one asking for close it puts its own
 * close in place of hsmcad's header. */
static void
http_connection(struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *asked = evhttp_find_header(in, "Connection");
	const char *ours = evhttp_find_header(out, "Connection");
	int http10, keepalive, closes;

	/* An absolute URI whose host is none of evhttp's own makes the
	 * request a proxy's to libevent: it would judge the connection by
	 * Proxy-Connection, drop hsmcad's Connection header and close.
	 * hsmcad is the origin server of any request it gets (RFC 9112
	 * 3.2.2); libevent's server reads the flag nowhere else. */
	req->flags &= ~EVHTTP_PROXY_REQUEST;
	http10 = req->major < 1 || (req->major == 1 && req->minor < 1);
	keepalive = asked != NULL &&
	    evutil_ascii_strncasecmp(asked, "keep-alive", 10) == 0;
	closes = (http10 && !keepalive) ||
	    (asked != NULL && evutil_ascii_strcasecmp(asked, "close") == 0) ||
	    (ours != NULL && evutil_ascii_strcasecmp(ours, "close") == 0);
	while (evhttp_remove_header(out, "Connection") == 0)
		;
	if (closes) {
		/* Then libevent adds no keep-alive, and still closes. */
		if (http10 && keepalive)
			while (evhttp_remove_header(in, "Connection") == 0)
				;
		evhttp_add_header(out, "Connection", "close");
	} else if (!http10)
		evhttp_add_header(out, "Connection", "keep-alive");
	/* An HTTP/1.0 connection kept: libevent's keep-alive says so. */
}

/* A HEAD: the Content-Length of the body a GET would get, and no body.
 * evhttp would send the body of a HEAD answer given one (libevent 2.1
 * holds back only its own Content-Length), which a client on a kept
 * connection would read as the start of the next answer. A HEAD that
 * came with a body closes the connection: evhttp read none of it. */
void
http_reply(struct evhttp_request *req, int status, const char *phrase,
    struct evbuffer *body)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *len;
	char num[32];

	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		snprintf(num, sizeof(num), "%zu", body != NULL ?
		    evbuffer_get_length(body) : 0);
		evhttp_add_header(out, "Content-Length", num);
		body = NULL;
		if (((len = evhttp_find_header(in, "Content-Length")) != NULL &&
		    strcmp(len, "0") != 0) ||
		    evhttp_find_header(in, "Transfer-Encoding") != NULL)
			evhttp_add_header(out, "Connection", "close");
	}
	http_connection(req);
	evhttp_send_reply(req, status, phrase, body);
}

/* A refusal where the handler has no helper of its own (or could not
 * make its state): status, and text as one line of text/plain (none if
 * even that finds no memory). */
void
http_text(struct evhttp_request *req, int status, const char *phrase,
    const char *text)
{
	struct evbuffer *body = evbuffer_new();

	if (body != NULL)
		evbuffer_add_printf(body, "%s\n", text);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	http_reply(req, status, phrase, body);
	if (body != NULL)
		evbuffer_free(body);
}
