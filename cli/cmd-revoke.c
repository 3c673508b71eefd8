/* cmd-revoke.c: hsmca revoke SERIAL | --serials FILE | --issuer GEN --all |
 * --unhold SERIAL */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsmca/clock.h"
#include "hsmca/crl.h"
#include "hsmca/serial.h"

#include "cli.h"

#define SERIALS_FILE_MAX	(32 * 1024 * 1024)

/* A file of serials, one per line; blank lines and '#' comments are
 * skipped. Any other line that is not a serial refuses the whole file. */
struct serial_list {
	char		(*hex)[SERIAL_HEX_MAX];
	const char	**ptr;
	size_t		  n, cap;
};

static void
serial_list_free(struct serial_list *l)
{
	free(l->hex);
	free(l->ptr);
	memset(l, 0, sizeof(*l));
}

static int
serial_list_read(struct cli *c, const char *path, struct serial_list *l)
{
	FILE *fp;
	unsigned char *buf = NULL;
	char *line = NULL, *p, *end;
	size_t linecap = 0, lineno = 0, len = 0;
	void *nv;
	int ret = CLI_EXIT_USAGE;

	memset(l, 0, sizeof(*l));
	if (c->remote) {
		/* The file the client sent, read from memory. */
		if ((ret = cli_read_input(c, path, SERIALS_FILE_MAX, &buf,
		    &len)) != CLI_EXIT_OK)
			return ret;
		if (len == 0) {
			free(buf);
			return cli_errorx(c, CLI_EXIT_USAGE, "%s holds no "
			    "serial number", path);
		}
		if ((fp = fmemopen(buf, len, "r")) == NULL) {
			free(buf);
			return cli_errorx(c, CLI_EXIT_FAIL, "out of memory");
		}
		ret = CLI_EXIT_USAGE;
	} else if (strcmp(path, "-") == 0)
		fp = stdin;
	else if ((fp = fopen(path, "r")) == NULL)
		return cli_errorx(c, CLI_EXIT_FAIL, "cannot read %s: %s", path,
		    strerror(errno));
	while (getline(&line, &linecap, fp) != -1) {
		lineno++;
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		end = p + strcspn(p, "#\r\n");
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		if (*p == '\0')
			continue;
		if (l->n == l->cap) {
			l->cap = l->cap == 0 ? 64 : l->cap * 2;
			if ((nv = reallocarray(l->hex, l->cap,
			    sizeof(*l->hex))) == NULL) {
				ret = cli_errorx(c, CLI_EXIT_FAIL,
				    "out of memory");
				goto out;
			}
			l->hex = nv;
		}
		if (serial_normalize(p, l->hex[l->n]) != 0) {
			ret = cli_errorx(c, CLI_EXIT_USAGE, "%s, line %zu: '%s' "
			    "is not a serial number (hex, at most 20 octets); "
			    "nothing was revoked", path, lineno, p);
			goto out;
		}
		l->n++;
	}
	if (ferror(fp)) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "cannot read %s", path);
		goto out;
	}
	if (l->n == 0) {
		ret = cli_errorx(c, CLI_EXIT_USAGE, "%s holds no serial number",
		    path);
		goto out;
	}
	if ((l->ptr = calloc(l->n, sizeof(*l->ptr))) == NULL) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < l->n; i++)
		l->ptr[i] = l->hex[i];
	ret = CLI_EXIT_OK;
out:
	free(line);
	if (fp != stdin)
		fclose(fp);
	free(buf);
	if (ret != CLI_EXIT_OK)
		serial_list_free(l);
	return ret;
}

/* Say what happened to one certificate, as the store now has it. */
static int
report_one(struct cli *c, int64_t issuer, const char *serial, int already,
    int unhold)
{
	struct store_cert r;
	char when[32];
	json_t *o;
	int ret;

	memset(&r, 0, sizeof(r));
	if ((ret = store_get_cert(c->st, issuer, serial, &r, &c->err)) != 0)
		return cli_error(c, ret);
	if (c->json) {
		o = json_object();
		json_object_set_new(o, "serial", json_string(r.serial));
		json_object_set_new(o, "issuer", json_integer(r.issuer_id));
		json_object_set_new(o, "status", json_string(
		    store_cert_status_name(r.status)));
		if (!unhold) {
			json_object_set_new(o, "already_revoked",
			    json_boolean(already));
			json_object_set_new(o, "revoked", out_time(r.revoked_at));
			json_object_set_new(o, "revocation_reason", json_string(
			    crl_reason_name(r.revoke_reason)));
		}
		out_object(c, o, NULL);
		json_decref(o);
	} else if (unhold)
		fprintf(c->out, "lifted the hold on certificate %s of CA generation "
		    "%lld: it is valid again\n", r.serial,
		    (long long)r.issuer_id);
	else
		fprintf(c->out, "%s certificate %s of CA generation %lld: %s, %s%s\n",
		    already ? "already revoked:" : "revoked", r.serial,
		    (long long)r.issuer_id, crl_reason_name(r.revoke_reason),
		    clock_format(r.revoked_at, when, sizeof(when)),
		    already ? " (nothing changed)" : "");
	store_cert_free_fields(&r);
	return CLI_EXIT_OK;
}

static void
report_bulk(struct cli *c, int64_t issuer, size_t listed, size_t revoked,
    size_t already, int reason)
{
	json_t *o;

	if (c->json) {
		o = json_object();
		json_object_set_new(o, "issuer", issuer != 0 ?
		    json_integer(issuer) : json_null());
		if (listed != 0)
			json_object_set_new(o, "listed", json_integer(
			    (json_int_t)listed));
		json_object_set_new(o, "revoked", json_integer(
		    (json_int_t)revoked));
		json_object_set_new(o, "already_revoked", json_integer(
		    (json_int_t)already));
		json_object_set_new(o, "revocation_reason", json_string(
		    crl_reason_name(reason)));
		out_object(c, o, NULL);
		json_decref(o);
		return;
	}
	fprintf(c->out, "revoked %zu certificate%s", revoked, revoked == 1 ? "" : "s");
	if (issuer != 0)
		fprintf(c->out, " of CA generation %lld", (long long)issuer);
	fprintf(c->out, " (%s); %zu already revoked", crl_reason_name(reason),
	    already);
	if (listed != 0)
		fprintf(c->out, "; %zu listed", listed);
	fputc('\n', c->out);
}

/* Record what a revocation changed, in its transaction, and commit
 * both; or roll both back. */
static int
revoke_audit(struct cli *c, int ret, enum audit_action action,
    const char *object, enum audit_outcome outcome, const char *detail)
{
	if (ret == 0)
		ret = cli_audit(c, action, object, outcome, detail);
	if (ret == 0)
		ret = store_commit(c->st, &c->err);
	if (ret != 0)
		store_rollback(c->st);
	return ret;
}

/* One certificate's audit record: its serial and generation. */
static int
revoke_audit_one(struct cli *c, int ret, int64_t issuer, const char *serial,
    int unhold, int already, int reason)
{
	struct store_cert r;
	char object[8 + SERIAL_HEX_MAX], detail[128];

	memset(&r, 0, sizeof(r));
	if (ret == 0)
		ret = store_get_cert(c->st, issuer, serial, &r, &c->err);
	snprintf(object, sizeof(object), "serial:%s", serial);
	if (unhold)
		snprintf(detail, sizeof(detail), "generation %lld: hold "
		    "lifted", (long long)r.issuer_id);
	else
		snprintf(detail, sizeof(detail), "generation %lld: %s%s",
		    (long long)r.issuer_id, crl_reason_name(already ?
		    r.revoke_reason : reason),
		    already ? " (already revoked)" : "");
	ret = revoke_audit(c, ret, unhold ? AUDIT_UNHOLD : AUDIT_REVOKE,
	    object, already ? AUDIT_UNCHANGED : AUDIT_OK, detail);
	store_cert_free_fields(&r);
	return ret;
}

static int
cmd_revoke(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "issuer", required_argument, NULL, 'i' },
		{ "serials", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		{ "unhold", no_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 }
	};
	struct serial_list list;
	const char *reason_name = NULL, *serials = NULL;
	char serial[SERIAL_HEX_MAX];
	size_t revoked = 0, already = 0;
	char object[32], detail[AUDIT_DETAIL_MAX];
	int64_t issuer = 0;
	int ch, ret, all = 0, unhold = 0, was = 0;
	int reason = CRL_REASON_UNSPECIFIED;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			reason_name = optarg;
			break;
		case 'i':
			if ((ret = cli_generation_id(c, optarg, &issuer)) != CLI_EXIT_OK)
				return ret;
			break;
		case 's':
			serials = optarg;
			break;
		case 'a':
			all = 1;
			break;
		case 'u':
			unhold = 1;
			break;
		default:
			return cli_usage(&cmd_revoke_table[0]);
		}
	}
	argc -= optind;
	argv += optind;
	/* Exactly one form. */
	if ((all + unhold + (serials != NULL)) > 1 ||
	    ((all || serials != NULL) && argc != 0) ||
	    (!all && serials == NULL && argc != 1) ||
	    (unhold && reason_name != NULL))
		return cli_usage(&cmd_revoke_table[0]);
	if (all && (issuer == 0 || reason_name == NULL))
		return cli_errorx(c, CLI_EXIT_USAGE, "revoking every "
		    "certificate of a generation takes --issuer GEN and an "
		    "explicit --reason (cACompromise for a compromised CA key)");
	if (reason_name != NULL &&
	    (ret = crl_reason_parse(reason_name, &reason, &c->err)) != 0)
		return cli_errorx(c, CLI_EXIT_USAGE, "%s", c->err.msg);
	if (argc == 1 && serial_normalize(argv[0], serial) != 0)
		return cli_errorx(c, CLI_EXIT_USAGE, "'%s' is not a serial "
		    "number (hex, at most 20 octets)", argv[0]);

	/* Each form changes the store and appends its audit record in one
	 * transaction. */
	if (serials != NULL &&
	    (ret = serial_list_read(c, serials, &list)) != CLI_EXIT_OK)
		return ret;
	if ((ret = store_begin(c->st, &c->err)) != 0) {
		if (serials != NULL)
			serial_list_free(&list);
		return cli_error(c, ret);
	}
	if (unhold) {
		ret = store_unhold_cert(c->st, issuer, serial, &c->err);
		if ((ret = revoke_audit_one(c, ret, issuer, serial, 1, 0,
		    0)) != 0)
			return cli_error(c, ret);
		return report_one(c, issuer, serial, 0, 1);
	}
	if (all) {
		ret = store_revoke_issuer(c->st, issuer, reason, clock_now(),
		    &revoked, &already, &c->err);
		snprintf(object, sizeof(object), "gen:%lld",
		    (long long)issuer);
		snprintf(detail, sizeof(detail), "every certificate: %zu "
		    "revoked, %zu already revoked, %s", revoked, already,
		    crl_reason_name(reason));
		if ((ret = revoke_audit(c, ret, AUDIT_REVOKE, object,
		    revoked != 0 ? AUDIT_OK : AUDIT_UNCHANGED, detail)) != 0)
			return cli_error(c, ret);
		report_bulk(c, issuer, 0, revoked, already, reason);
		return CLI_EXIT_OK;
	}
	if (serials != NULL) {
		ret = store_revoke_serials(c->st, issuer, list.ptr, list.n,
		    reason, clock_now(), &revoked, &already, &c->err);
		if (issuer != 0)
			snprintf(object, sizeof(object), "gen:%lld",
			    (long long)issuer);
		else
			snprintf(object, sizeof(object), "serials");
		snprintf(detail, sizeof(detail), "%zu listed in %s: %zu "
		    "revoked, %zu already revoked, %s", list.n, serials,
		    revoked, already, crl_reason_name(reason));
		ret = revoke_audit(c, ret, AUDIT_REVOKE, object, revoked != 0 ?
		    AUDIT_OK : AUDIT_UNCHANGED, detail);
		if (ret != 0) {
			serial_list_free(&list);
			fprintf(c->errout, "hsmca: nothing was revoked\n");
			return cli_error(c, ret);
		}
		report_bulk(c, issuer, list.n, revoked, already, reason);
		serial_list_free(&list);
		return CLI_EXIT_OK;
	}
	ret = store_revoke_cert(c->st, issuer, serial, reason, clock_now(),
	    &was, &c->err);
	if ((ret = revoke_audit_one(c, ret, issuer, serial, 0, was,
	    reason)) != 0)
		return cli_error(c, ret);
	return report_one(c, issuer, serial, was, 0);
}

const struct cli_cmd cmd_revoke_table[] = {
	{ NULL, "revoke",
	  "SERIAL [--reason R] [--issuer GEN] | --serials FILE [--reason R] "
	  "[--issuer GEN] | --issuer GEN --all --reason R | --unhold SERIAL "
	  "[--issuer GEN]",
	  "revoke certificates (or lift a certificateHold)",
	  "  --reason R       RFC 5280 reason: unspecified (default), keyCompromise,\n"
	  "                   cACompromise, affiliationChanged, superseded,\n"
	  "                   cessationOfOperation, certificateHold,\n"
	  "                   privilegeWithdrawn, aACompromise\n"
	  "  --issuer GEN     the generation that issued the serial (id or\n"
	  "                   thumbprint); needed when several did\n"
	  "  --serials FILE   one serial per line ('-': standard input); all are\n"
	  "                   revoked in one transaction, or none\n"
	  "  --all            every valid certificate of --issuer GEN\n"
	  "  --unhold         lift a certificateHold: the certificate is valid\n"
	  "                   again and leaves the next CRL\n"
	  "Revoking a revoked certificate changes nothing and succeeds; a\n"
	  "certificate on hold is revoked for good by any other reason.\n"
	  "Publish the change with `hsmca crl`.\n",
	  CLI_NEED_STORE, cmd_revoke },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
