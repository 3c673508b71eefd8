/* periodic.c (hsmcad): work that runs once at start and then again and
 * again on a loop's timer: the signer's sweep of reservations (sweep.c)
 * and the front's audit checkpoints (checkpoint.c). The work says when
 * it runs next, each time: an interval a reload changed applies from the
 * next run on, and work that is over (the front drains) stops it. */
#include "config.h"

#include <stdlib.h>

#include <event2/event.h>

#include "hsmcad.h"

struct periodic {
	struct event	*ev;
	time_t		(*run)(void *);
	void		*arg;
};

static void
periodic_tick(evutil_socket_t fd, short what, void *arg)
{
	struct periodic *p = arg;
	struct timeval tv = { 0, 0 };

	if ((tv.tv_sec = p->run(p->arg)) > 0)
		event_add(p->ev, &tv);
}

struct periodic *
periodic_start(struct event_base *base, const char *what,
    time_t (*run)(void *arg), void *arg, struct hsmca_err *e)
{
	struct periodic *p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		return NULL;
	}
	p->run = run;
	p->arg = arg;
	if ((p->ev = evtimer_new(base, periodic_tick, p)) == NULL) {
		free(p);
		err_set(e, HSMCA_ERR_INTERNAL, "%s timer", what);
		return NULL;
	}
	periodic_tick(-1, 0, p);
	return p;
}

void
periodic_free(struct periodic *p)
{
	if (p == NULL)
		return;
	event_free(p->ev);
	free(p);
}
