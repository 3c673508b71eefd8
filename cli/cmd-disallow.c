/* cmd-disallow.c: hsmca disallow add | remove | list: device identities
 * (a CN, or a certificate's SHA-256 fingerprint) that may not enroll. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsmca/clock.h"
#include "hsmca/util.h"

#include "cli.h"

static int
cmd_disallow_add(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "note", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	enum store_disallow_kind kind;
	char buf[UTIL_SHA256_HEX];
	const char *note = NULL, *id;
	char object[300], detail[AUDIT_DETAIL_MAX];
	json_t *o;
	int ch, ret, already = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'n')
			return cli_usage(&cmd_disallow_table[0]);
		note = optarg;
	}
	if (optind + 1 != argc)
		return cli_usage(&cmd_disallow_table[0]);
	if ((ret = store_disallow_normalize(argv[optind], buf, &id, &kind,
	    &c->err)) != 0)
		return cli_errorx(c, CLI_EXIT_USAGE, "%s", c->err.msg);
	/* The change and its audit record commit together. */
	if ((ret = store_begin(c->st, &c->err)) != 0)
		return cli_error(c, ret);
	ret = store_disallow_add(c->st, id, note, clock_now(), &c->err);
	if (ret == HSMCA_ERR_EXISTS) {
		already = 1;
		ret = 0;
	}
	snprintf(object, sizeof(object), "%s:%s",
	    store_disallow_kind_name(kind), id);
	snprintf(detail, sizeof(detail), "%s%s%s", already ? "already on "
	    "the list" : "added", note != NULL ? "; note: " : "",
	    note != NULL ? note : "");
	if (ret == 0)
		ret = cli_audit(c, AUDIT_DISALLOW_ADD, object, already ?
		    AUDIT_UNCHANGED : AUDIT_OK, detail);
	if (ret == 0)
		ret = store_commit(c->st, &c->err);
	if (ret != 0) {
		store_rollback(c->st);
		return cli_error(c, ret);
	}
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "identity", json_string(id));
		json_object_set_new(o, "kind", json_string(
		    store_disallow_kind_name(kind)));
		json_object_set_new(o, "already", json_boolean(already));
		out_object(c, o, NULL);
		json_decref(o);
	} else
		fprintf(c->out, "%s %s %s\n", kind == STORE_DISALLOW_CN ? "device CN" :
		    "certificate fingerprint", id, already ? "was already "
		    "disallowed (nothing changed)" : "may no longer enroll");
	return CLI_EXIT_OK;
}

static int
cmd_disallow_remove(struct cli *c, int argc, char **argv)
{
	enum store_disallow_kind kind;
	char buf[UTIL_SHA256_HEX], object[300];
	const char *id;
	int ret;

	if (argc != 2)
		return cli_usage(&cmd_disallow_table[1]);
	/* As store_disallow_remove finds it, for the audit record. */
	if (store_disallow_normalize(argv[1], buf, &id, &kind, NULL) == 0)
		snprintf(object, sizeof(object), "%s:%s",
		    store_disallow_kind_name(kind), id);
	else
		snprintf(object, sizeof(object), "%s", argv[1]);
	if ((ret = store_begin(c->st, &c->err)) != 0)
		return cli_error(c, ret);
	if ((ret = store_disallow_remove(c->st, argv[1], &c->err)) != 0 ||
	    (ret = cli_audit(c, AUDIT_DISALLOW_REMOVE, object, AUDIT_OK,
	    "removed")) != 0 || (ret = store_commit(c->st, &c->err)) != 0) {
		store_rollback(c->st);
		return cli_error(c, ret);
	}
	if (!c->json)
		fprintf(c->out, "%s removed from the disallow list\n", argv[1]);
	return CLI_EXIT_OK;
}

static int
cmd_disallow_list(struct cli *c, int argc, char **argv)
{
	static const struct out_col cols[] = {
		{ "identity", "IDENTITY" }, { "kind", "KIND" },
		{ "added", "ADDED" }, { "note", "NOTE" }, { NULL, NULL }
	};
	struct store_disallow *v = NULL;
	size_t n = 0;
	json_t *rows, *o;
	int ret;

	if (argc != 1)
		return cli_usage(&cmd_disallow_table[2]);
	if ((ret = store_disallow_list(c->st, &v, &n, &c->err)) != 0)
		return cli_error(c, ret);
	rows = json_array();
	for (size_t i = 0; i < n; i++) {
		o = json_object();
		json_object_set_new(o, "identity", json_string(v[i].identity));
		json_object_set_new(o, "kind", json_string(
		    store_disallow_kind_name(v[i].kind)));
		json_object_set_new(o, "added", out_time(v[i].added_at));
		json_object_set_new(o, "note", v[i].note != NULL ?
		    json_string(v[i].note) : json_null());
		json_array_append_new(rows, o);
	}
	out_list(c, rows, cols);
	json_decref(rows);
	store_disallow_free(v, n);
	return CLI_EXIT_OK;
}

const struct cli_cmd cmd_disallow_table[] = {
	{ "disallow", "add", "[--note TEXT] IDENTITY",
	  "stop a device identity from enrolling",
	  "  IDENTITY      a device's subject CN, or a certificate's SHA-256\n"
	  "                fingerprint (64 hex digits, colons allowed)\n"
	  "  --note TEXT   why (shown by `disallow list`)\n",
	  CLI_NEED_STORE, cmd_disallow_add },
	{ "disallow", "remove", "IDENTITY",
	  "let a disallowed identity enroll again", NULL,
	  CLI_NEED_STORE, cmd_disallow_remove },
	{ "disallow", "list", "", "list disallowed device identities", NULL,
	  CLI_NEED_STORE, cmd_disallow_list },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
