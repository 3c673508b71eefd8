/* cmd-audit.c: hsmca audit list | verify: read and check the hash-chained
 * audit log. Also cli_actor(), how the CLI names itself in the log. */
#include "config.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsmca/audit.h"
#include "hsmca/clock.h"
#include "hsmca/util.h"

#include "cli.h"

const char *
cli_actor(void)
{
	static char actor[96];
	struct passwd *pw;

	if (actor[0] == '\0') {
		pw = getpwuid(getuid());
		if (pw != NULL)
			snprintf(actor, sizeof(actor), "cli:%s", pw->pw_name);
		else
			snprintf(actor, sizeof(actor), "cli:uid=%lu",
			    (unsigned long)getuid());
	}
	return actor;
}

int
cli_audit(struct cli *c, enum audit_action action, const char *object,
    enum audit_outcome outcome, const char *detail)
{
	struct audit_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.actor = cli_actor();
	ev.action = action;
	ev.object = object;
	ev.outcome = outcome;
	ev.detail = detail;
	return audit_append(c->st, &ev, &c->err);
}

static int
list_row(void *arg, const struct store_audit *r)
{
	json_t *rows = arg, *o;

	o = json_object();
	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "time", out_time(r->at));
	json_object_set_new(o, "actor", json_string(r->actor));
	json_object_set_new(o, "action", json_string(r->action));
	json_object_set_new(o, "object", json_string(r->object));
	json_object_set_new(o, "outcome", json_string(r->outcome));
	json_object_set_new(o, "detail", json_string(r->detail));
	json_array_append_new(rows, o);
	return 0;
}

static int
cmd_audit_list(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "action", required_argument, NULL, 'a' },
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct out_col cols[] = {
		{ "id", "ID" }, { "time", "TIME" }, { "actor", "ACTOR" },
		{ "action", "ACTION" }, { "object", "OBJECT" },
		{ "outcome", "OUTCOME" }, { "detail", "DETAIL" },
		{ NULL, NULL }
	};
	struct store_audit_filter f;
	enum audit_action a;
	long long n;
	int64_t secs;
	json_t *rows;
	int ch, ret;

	memset(&f, 0, sizeof(f));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			/* A time, or a duration back from now ("7d"). */
			if (clock_parse(optarg, &f.since) != 0) {
				if (util_parse_duration(optarg, &secs) != 0 ||
				    secs < 0)
					return cli_errorx(c, CLI_EXIT_USAGE,
					    "--since '%s' is neither a time "
					    "(YYYY-MM-DDTHH:MM:SSZ) nor a "
					    "duration (7d, 12h ...)", optarg);
				f.since = clock_now() - (time_t)secs;
			}
			break;
		case 'a':
			if (audit_action_parse(optarg, &a) != 0)
				return cli_errorx(c, CLI_EXIT_USAGE, "--action "
				    "'%s' is not an audit action (issue, "
				    "revoke, ca-init ...)", optarg);
			f.action = audit_action_name(a);
			break;
		case 'l':
			if (cli_number(c, "--limit", optarg, 1, 1000000,
			    &n) != 0)
				return CLI_EXIT_USAGE;
			f.limit = (int)n;
			break;
		default:
			return cli_usage(&cmd_audit_table[0]);
		}
	}
	if (optind != argc)
		return cli_usage(&cmd_audit_table[0]);
	rows = json_array();
	if ((ret = store_audit_walk(c->st, &f, list_row, rows, NULL,
	    &c->err)) != 0) {
		json_decref(rows);
		return cli_error(c, ret);
	}
	out_list(c, rows, cols);
	json_decref(rows);
	return CLI_EXIT_OK;
}

static int
cmd_audit_verify(struct cli *c, int argc, char **argv)
{
	size_t count = 0;
	int64_t bad = 0;
	json_t *o;
	int ret;

	(void)argv;
	if (argc != 1)
		return cli_usage(&cmd_audit_table[1]);
	ret = audit_verify(c->st, &count, &bad, &c->err);
	if (ret != 0 && bad == 0)
		return cli_error(c, ret);
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "intact", json_boolean(ret == 0));
		json_object_set_new(o, "records", json_integer(
		    (json_int_t)count));
		json_object_set_new(o, "first_bad", bad != 0 ?
		    json_integer(bad) : json_null());
		json_object_set_new(o, "reason", ret != 0 ?
		    json_string(c->err.msg) : json_null());
		out_object(c, o, NULL);
		json_decref(o);
	} else if (ret == 0)
		printf("audit log intact: %zu record%s\n", count,
		    count == 1 ? "" : "s");
	if (ret != 0) {
		fprintf(stderr, "hsmca: audit log broken at record %lld: %s\n",
		    (long long)bad, c->err.msg);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

const struct cli_cmd cmd_audit_table[] = {
	{ "audit", "list", "[--since T] [--action A] [--limit N]",
	  "show the audit log",
	  "  --since T     records from T on: a time (YYYY-MM-DDTHH:MM:SSZ) or\n"
	  "                a duration back from now (7d, 12h)\n"
	  "  --action A    only one action: issue, refuse, revoke, unhold,\n"
	  "                disallow-add, disallow-remove, ca-init, ca-import,\n"
	  "                ca-import-cert, crl ...\n"
	  "  --limit N     only the last N matching records\n",
	  CLI_NEED_STORE, cmd_audit_list },
	{ "audit", "verify", "",
	  "check the audit log's hash chain",
	  "Recomputes every record's hash and link to the one before it; an\n"
	  "edited, deleted, reordered or inserted record is reported by id\n"
	  "(exit 1). Records removed from the end are not detected until\n"
	  "signed checkpoints exist.\n",
	  CLI_NEED_STORE, cmd_audit_verify },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
