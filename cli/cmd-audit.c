/* cmd-audit.c: hsmca audit list | verify | checkpoint: read and check the
 * hash-chained audit log and its signed checkpoints, and sign one. Also
 * cli_actor(), how the CLI names itself in the log. */
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
	ev.actor = c->ca.actor != NULL ? c->ca.actor : cli_actor();
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

/* Hex of at most 512 bytes (a signature). */
static json_t *
hex_value(const unsigned char *b, size_t len)
{
	char hex[2 * 512 + 1];

	if (len > 512)
		len = 512;
	util_hex(b, len, hex);
	return json_string(hex);
}

static int
checkpoint_row(void *arg, const struct store_checkpoint *cp)
{
	json_t *rows = arg, *o;
	char gen[32];

	snprintf(gen, sizeof(gen), "%lld", (long long)cp->gen_id);
	o = json_object();
	json_object_set_new(o, "checkpoint", json_integer(cp->id));
	json_object_set_new(o, "time", out_time(cp->at));
	json_object_set_new(o, "record", json_integer(cp->record_id));
	json_object_set_new(o, "record_hash", cp->malformed ? json_null() :
	    hex_value(cp->record_hash, sizeof(cp->record_hash)));
	json_object_set_new(o, "generation", json_integer(cp->gen_id));
	json_object_set_new(o, "algorithm", json_string(cp->sig_alg));
	json_object_set_new(o, "signature", hex_value(cp->sig, cp->sig_len));
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
		{ "checkpoints", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct out_col cols[] = {
		{ "id", "ID" }, { "time", "TIME" }, { "actor", "ACTOR" },
		{ "action", "ACTION" }, { "object", "OBJECT" },
		{ "outcome", "OUTCOME" }, { "detail", "DETAIL" },
		{ NULL, NULL }
	};
	static const struct out_col ckpt_cols[] = {
		{ "checkpoint", "CHECKPOINT" }, { "time", "TIME" },
		{ "record", "RECORD" }, { "generation", "GENERATION" },
		{ "algorithm", "ALGORITHM" }, { "record_hash", "RECORD HASH" },
		{ NULL, NULL }
	};
	struct store_audit_filter f;
	enum audit_action a;
	long long n;
	int64_t secs;
	json_t *rows;
	int ch, ret, checkpoints = 0;

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
		case 'c':
			checkpoints = 1;
			break;
		default:
			return cli_usage(&cmd_audit_table[0]);
		}
	}
	if (optind != argc)
		return cli_usage(&cmd_audit_table[0]);
	if (checkpoints && f.action != NULL)
		return cli_errorx(c, CLI_EXIT_USAGE, "--action selects records, "
		    "not checkpoints");
	rows = json_array();
	if (checkpoints)
		ret = store_checkpoint_walk(c->st, f.since, f.limit,
		    checkpoint_row, rows, NULL, &c->err);
	else
		ret = store_audit_walk(c->st, &f, list_row, rows, NULL,
		    &c->err);
	if (ret != 0) {
		json_decref(rows);
		return cli_error(c, ret);
	}
	out_list(c, rows, checkpoints ? ckpt_cols : cols);
	json_decref(rows);
	return CLI_EXIT_OK;
}

static json_t *
id_or_null(int64_t id)
{
	return id != 0 ? json_integer(id) : json_null();
}

static int
cmd_audit_verify(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store-only", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	struct audit_verify_result r;
	char t[32];
	json_t *o;
	int ch, store_only = 0, ret;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 's')
			return cli_usage(&cmd_audit_table[1]);
		store_only = 1;
	}
	if (optind != argc)
		return cli_usage(&cmd_audit_table[1]);
	/* The checkpoints' keys come from the token, not from the store
	 * that is being checked. */
	if (!store_only && (ret = cli_open(c, CLI_NEED_HSM)) != CLI_EXIT_OK)
		return ret;
	ret = audit_verify(c->st, store_only ? NULL : c->hsm, &r, &c->err);
	if (ret != 0 && ret != HSMCA_ERR_VERIFY)
		return cli_error(c, ret);
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "intact", json_boolean(ret == 0));
		json_object_set_new(o, "records", json_integer(
		    (json_int_t)r.records));
		json_object_set_new(o, "checkpoints", json_integer(
		    (json_int_t)r.checkpoints));
		json_object_set_new(o, "signed_through",
		    id_or_null(r.signed_through));
		json_object_set_new(o, "signed_at", out_time(r.signed_at));
		json_object_set_new(o, "first_bad", id_or_null(r.bad_record));
		json_object_set_new(o, "reason", r.bad_record != 0 ?
		    json_string(r.record_msg) : json_null());
		json_object_set_new(o, "bad_checkpoint",
		    id_or_null(r.bad_checkpoint));
		json_object_set_new(o, "bad_checkpoint_record",
		    id_or_null(r.bad_checkpoint_record));
		json_object_set_new(o, "checkpoint_reason",
		    r.bad_checkpoint != 0 ? json_string(r.checkpoint_msg) :
		    json_null());
		out_object(c, o, NULL);
		json_decref(o);
	} else if (ret == 0 && r.checkpoints == 0)
		fprintf(c->out, "audit log intact: %zu record%s, no signed "
		    "checkpoint (records cut from the end would go "
		    "unnoticed)\n", r.records, r.records == 1 ? "" : "s");
	else if (ret == 0)
		fprintf(c->out, "audit log intact: %zu record%s, %zu signed "
		    "checkpoint%s; signed through record %lld at %s, %lld "
		    "record%s since\n", r.records, r.records == 1 ? "" : "s",
		    r.checkpoints, r.checkpoints == 1 ? "" : "s",
		    (long long)r.signed_through,
		    clock_format(r.signed_at, t, sizeof(t)),
		    (long long)(r.head - r.signed_through),
		    r.head - r.signed_through == 1 ? "" : "s");
	if (r.bad_record != 0)
		fprintf(c->errout, "hsmca: audit log broken at record %lld: "
		    "%s\n", (long long)r.bad_record, r.record_msg);
	if (r.bad_checkpoint != 0)
		fprintf(c->errout, "hsmca: audit checkpoint %lld (record %lld) "
		    "does not hold: %s\n", (long long)r.bad_checkpoint,
		    (long long)r.bad_checkpoint_record, r.checkpoint_msg);
	return ret == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static int
cmd_audit_checkpoint(struct cli *c, int argc, char **argv)
{
	struct audit_signer as;
	struct audit_checkpoint cp;
	struct issuer *iss = NULL;
	char t[32], hex[2 * STORE_AUDIT_HASH_LEN + 1];
	json_t *o;
	int ret;

	(void)argv;
	if (argc != 1)
		return cli_usage(&cmd_audit_table[2]);
	if ((ret = ca_open_active(&c->ca, &iss, &c->err)) != 0)
		return cli_error(c, ret);
	audit_signer_issuer(&as, c->hsm, iss);
	/* Not itself recorded in the log: that would move the head it
	 * has just signed. */
	if ((ret = audit_checkpoint(c->st, &as, clock_now(), 1, &cp,
	    &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	util_hex(cp.record_hash, sizeof(cp.record_hash), hex);
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "checkpoint", json_integer(cp.id));
		json_object_set_new(o, "time", out_time(cp.at));
		json_object_set_new(o, "record", json_integer(cp.record_id));
		json_object_set_new(o, "record_hash", json_string(hex));
		json_object_set_new(o, "generation", json_integer(cp.gen_id));
		json_object_set_new(o, "algorithm", json_string(cp.sig_alg));
		out_object(c, o, NULL);
		json_decref(o);
	} else
		fprintf(c->out, "audit checkpoint %lld at %s: record %lld "
		    "(%s), signed by CA generation %lld (%s)\n",
		    (long long)cp.id, clock_format(cp.at, t, sizeof(t)),
		    (long long)cp.record_id, hex, (long long)cp.gen_id,
		    cp.sig_alg);
	ret = CLI_EXIT_OK;
out:
	issuer_free(iss);
	return ret;
}

const struct cli_cmd cmd_audit_table[] = {
	{ "audit", "list",
	  "[--since T] [--action A] [--limit N] [--checkpoints]",
	  "show the audit log, or its signed checkpoints",
	  "  --since T       records from T on: a time (YYYY-MM-DDTHH:MM:SSZ)\n"
	  "                  or a duration back from now (7d, 12h)\n"
	  "  --action A      only one action: issue, refuse, revoke, unhold,\n"
	  "                  disallow-add, disallow-remove, ca-init,\n"
	  "                  ca-import, ca-import-cert, crl ...\n"
	  "  --limit N       only the last N matching records\n"
	  "  --checkpoints   the signed checkpoints instead of the records\n"
	  "                  (--since and --limit apply to them)\n",
	  CLI_NEED_STORE, cmd_audit_list },
	{ "audit", "verify", "[--store-only]",
	  "check the audit log's hash chain and its signed checkpoints",
	  "Recomputes every record's hash and link to the one before it, and\n"
	  "checks every checkpoint's signature (with its CA generation's\n"
	  "key as the token holds it: a generation and certificate written\n"
	  "into the store by someone else sign nothing; --store-only trusts\n"
	  "the certificates in the store instead, for a copy checked away\n"
	  "from the token) and that the record it names is in the log with the\n"
	  "hash it signed. An edited, deleted, reordered or inserted record,\n"
	  "records cut from the end before the last checkpoint, and a\n"
	  "checkpoint that does not match are reported by id (exit 1).\n"
	  "Records appended after the last checkpoint are covered by the\n"
	  "chain alone: cutting them off is not detectable.\n",
	  CLI_NEED_STORE, cmd_audit_verify },
	{ "audit", "checkpoint", "",
	  "sign the audit chain's head now",
	  "Signs the last record's id and hash with the active CA\n"
	  "generation's key in the HSM and stores it as the next checkpoint.\n"
	  "The records since the previous checkpoint are checked first: a\n"
	  "broken log is never signed. hsmcad makes one every\n"
	  "audit-checkpoint-interval when the log has grown.\n",
	  CLI_NEED_STORE | CLI_NEED_HSM, cmd_audit_checkpoint },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
