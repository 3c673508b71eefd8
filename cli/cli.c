/* cli.c: what hsmca and hsmcad share of the command line: the command
 * tables, opening what a command needs, errors and exit codes, and
 * running one command line on behalf of a remote operator (the admin
 * API runs the same commands, so a remote call prints what a local one
 * would). Like tmux, the server executes the command and the client only
 * shows its output. */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsmca/util.h"

#include "cli.h"

const struct cli_cmd *const cli_cmd_tables[] = {
	cmd_token_table,
	cmd_ca_table,
	cmd_issue_table,
	cmd_cert_table,
	cmd_config_table,
	cmd_est_table,
	cmd_revoke_table,
	cmd_crl_table,
	cmd_disallow_table,
	cmd_audit_table,
	cmd_expiring_table,
	cmd_batch_table,
	NULL
};

/*
 * Every command an operator may run through the admin API, the least
 * role that may run it, and its file options: "<x:name" is an input file
 * (short option x, long option name; "-" for none), ">x:name" an output
 * file. A command not listed here runs only on the appliance. One table,
 * so that what the network may do is read in one place.
 */
static const struct cli_remote_rule {
	const char		*cmd;		/* "group name" or "name" */
	enum config_role	 role;
	const char		*files;
} cli_remote_rules[] = {
	{ "ca list",		CONFIG_ROLE_AUDITOR,	NULL },
	{ "ca show",		CONFIG_ROLE_AUDITOR,	NULL },
	{ "ca download",	CONFIG_ROLE_AUDITOR,	">o:out" },
	{ "ca pop",		CONFIG_ROLE_OPERATOR,	">o:out" },
	{ "ca rotate",		CONFIG_ROLE_ADMIN,	">o:csr-out" },
	{ "ca activate",	CONFIG_ROLE_ADMIN,	NULL },
	{ "ca revoke",		CONFIG_ROLE_ADMIN,	NULL },
	{ "ca tick",		CONFIG_ROLE_ADMIN,	NULL },
	{ "issue",		CONFIG_ROLE_OPERATOR,	"<r:csr >o:out" },
	{ "cert list",		CONFIG_ROLE_AUDITOR,	NULL },
	{ "cert show",		CONFIG_ROLE_AUDITOR,	NULL },
	{ "revoke",		CONFIG_ROLE_OPERATOR,	"<s:serials" },
	{ "crl",		CONFIG_ROLE_OPERATOR,	">o:out" },
	{ "disallow add",	CONFIG_ROLE_OPERATOR,	NULL },
	{ "disallow remove",	CONFIG_ROLE_OPERATOR,	NULL },
	{ "disallow list",	CONFIG_ROLE_AUDITOR,	NULL },
	{ "audit list",		CONFIG_ROLE_AUDITOR,	NULL },
	{ "audit verify",	CONFIG_ROLE_AUDITOR,	NULL },
	{ "audit checkpoint",	CONFIG_ROLE_OPERATOR,	NULL },
	{ "expiring",		CONFIG_ROLE_AUDITOR,	NULL },
};

const char *
cli_role_name(enum config_role r)
{
	switch (r) {
	case CONFIG_ROLE_ADMIN:
		return "admin";
	case CONFIG_ROLE_OPERATOR:
		return "operator";
	case CONFIG_ROLE_AUDITOR:
		return "auditor";
	default:
		return "none";
	}
}

static void
cmd_name(const struct cli_cmd *cmd, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", cmd->group ? cmd->group : "",
	    cmd->group ? " " : "", cmd->name);
}

int
cli_remote_rule(const struct cli_cmd *cmd, enum config_role *role,
    const char **files)
{
	char name[64];

	cmd_name(cmd, name, sizeof(name));
	for (size_t i = 0; i < sizeof(cli_remote_rules) /
	    sizeof(cli_remote_rules[0]); i++)
		if (strcmp(cli_remote_rules[i].cmd, name) == 0) {
			*role = cli_remote_rules[i].role;
			*files = cli_remote_rules[i].files;
			return 1;
		}
	return 0;
}

/* Where usage lines go: the remote caller's error stream while a remote
 * command runs on this thread, else stderr. */
static _Thread_local FILE *usage_fp;

int
cli_usage(const struct cli_cmd *cmd)
{
	fprintf(usage_fp != NULL ? usage_fp : stderr, "usage: hsmca %s%s%s %s\n",
	    cmd->group ? cmd->group : "", cmd->group ? " " : "", cmd->name,
	    cmd->args ? cmd->args : "");
	return CLI_EXIT_USAGE;
}

void
cli_help_cmd(FILE *fp, const struct cli_cmd *cmd)
{
	fprintf(fp, "usage: hsmca %s%s%s %s\n\n%s\n", cmd->group ? cmd->group :
	    "", cmd->group ? " " : "", cmd->name, cmd->args ? cmd->args : "",
	    cmd->summary);
	if (cmd->help != NULL)
		fprintf(fp, "\n%s", cmd->help);
}

int
cli_exit_code(int errcode)
{
	switch (errcode) {
	case HSMCA_OK:
		return CLI_EXIT_OK;
	case HSMCA_ERR_NOT_FOUND:
	case HSMCA_ERR_PROFILE:
		return CLI_EXIT_NOT_FOUND;
	case HSMCA_ERR_HSM_UNAVAILABLE:
	case HSMCA_ERR_PIN:
	case HSMCA_ERR_HSM:
	case HSMCA_ERR_KEY_NOT_FOUND:
	case HSMCA_ERR_KEY_AMBIGUOUS:
		return CLI_EXIT_HSM;
	case HSMCA_ERR_STORE:
		return CLI_EXIT_STORE;
	default:
		return CLI_EXIT_FAIL;
	}
}

int
cli_error(struct cli *c, int code)
{
	fprintf(c->errout, "hsmca: %s\n", c->err.msg[0] != '\0' ? c->err.msg :
	    hsmca_strerror(code));
	return cli_exit_code(code);
}

int
cli_errorx(struct cli *c, int exit_code, const char *fmt, ...)
{
	va_list ap;

	fputs("hsmca: ", c->errout);
	va_start(ap, fmt);
	vfprintf(c->errout, fmt, ap);
	va_end(ap);
	fputc('\n', c->errout);
	return exit_code;
}

int
cli_open(struct cli *c, unsigned int needs)
{
	int ret;

	if (needs & CLI_NO_CONFIG)
		return CLI_EXIT_OK;
	if (c->cfg == NULL) {
		const char *path = c->config_path;
		char dflt[512];

		if (path == NULL && (path = getenv("HSMCA_CONFIG")) != NULL &&
		    *path == '\0')
			return cli_errorx(c, CLI_EXIT_USAGE,
			    "HSMCA_CONFIG is set but empty");
		if (path == NULL) {
			snprintf(dflt, sizeof(dflt), "%s/hsmca/hsmca.conf",
			    SYSCONFDIR);
			/* If it exists it is the config, readable or not:
			 * never fall back to the demo defaults silently. */
			if (access(dflt, F_OK) == 0)
				path = dflt;
		}
		if ((ret = config_load(path, &c->cfg, &c->err)) != 0)
			return cli_error(c, ret);
	}
	if ((needs & (CLI_NEED_STORE | CLI_NEED_HSM)) &&
	    (c->cfg->store.path == NULL || c->cfg->hsm.module == NULL))
		return cli_errorx(c, CLI_EXIT_USAGE, "%s has no [hsm] and "
		    "[store]: this command runs on the appliance, or through "
		    "its admin API with [remote] server or --server",
		    c->cfg->path != NULL ? c->cfg->path : "the configuration");
	if ((needs & CLI_NEED_STORE) && c->st == NULL &&
	    (ret = store_open(c->cfg->store.path, &c->st, &c->err)) != 0)
		return cli_error(c, ret);
	if ((needs & CLI_NEED_HSM) && c->hsm == NULL &&
	    (ret = hsm_open(&c->cfg->hsm, &c->hsm, &c->err)) != 0)
		return cli_error(c, ret);
	c->ca.cfg = c->cfg;
	c->ca.st = c->st;
	c->ca.hsm = c->hsm;
	if (c->ca.actor == NULL)
		c->ca.actor = cli_actor();
	return CLI_EXIT_OK;
}

const struct cli_cmd *
cli_find_cmd(int argc, char **argv, int *consumed)
{
	for (size_t t = 0; cli_cmd_tables[t] != NULL; t++)
		for (const struct cli_cmd *cmd = cli_cmd_tables[t];
		    cmd->name != NULL; cmd++) {
			if (cmd->group == NULL) {
				if (strcmp(argv[0], cmd->name) == 0) {
					*consumed = 1;
					return cmd;
				}
			} else if (argc >= 2 && strcmp(argv[0], cmd->group) == 0 &&
			    strcmp(argv[1], cmd->name) == 0) {
				*consumed = 2;
				return cmd;
			}
		}
	return NULL;
}

int
cli_group_known(const char *name)
{
	for (size_t t = 0; cli_cmd_tables[t] != NULL; t++)
		for (const struct cli_cmd *cmd = cli_cmd_tables[t];
		    cmd->name != NULL; cmd++)
			if (cmd->group != NULL && strcmp(cmd->group, name) == 0)
				return 1;
	return 0;
}

int
cli_read_input(struct cli *c, const char *path, size_t max,
    unsigned char **buf, size_t *len)
{
	json_t *v;
	int ret;

	*buf = NULL;
	*len = 0;
	if (!c->remote) {
		if ((ret = util_read_file(path, max, buf, len, &c->err)) != 0)
			return cli_error(c, ret);
		return CLI_EXIT_OK;
	}
	/* Remotely a file is what the client sent under that name; a path
	 * names a file on the appliance and is never opened for it. */
	if (c->files_in == NULL || strncmp(path, "@in:", 4) != 0 ||
	    (v = json_object_get(c->files_in, path)) == NULL ||
	    !json_is_string(v))
		return cli_errorx(c, CLI_EXIT_USAGE, "%s: files are sent with "
		    "the request; a path on the appliance is not accepted",
		    path);
	if (json_string_length(v) == 0) {
		if ((*buf = malloc(1)) == NULL)
			return cli_errorx(c, CLI_EXIT_FAIL, "out of memory");
		return CLI_EXIT_OK;
	}
	if (util_b64_decode((const unsigned char *)json_string_value(v),
	    json_string_length(v), buf, len, &c->err) != 0)
		return cli_errorx(c, CLI_EXIT_USAGE, "%s: bad base64", path);
	if (*len > max) {
		util_freezero(*buf, *len);
		*buf = NULL;
		return cli_errorx(c, CLI_EXIT_USAGE, "%s: larger than %zu bytes",
		    path, max);
	}
	return CLI_EXIT_OK;
}

int
cli_write_output(struct cli *c, const char *path, const void *data,
    size_t len)
{
	char *b64;
	size_t b64len;
	int ret;

	if (path == NULL || strcmp(path, "-") == 0) {
		if (fwrite(data, 1, len, c->out) != len || fflush(c->out) != 0)
			return cli_errorx(c, CLI_EXIT_FAIL,
			    "cannot write to standard output");
		return CLI_EXIT_OK;
	}
	if (c->remote) {
		if (c->files_out == NULL || strncmp(path, "@out:", 5) != 0 ||
		    strlen(path) > 16)
			return cli_errorx(c, CLI_EXIT_USAGE, "%s: output files "
			    "are written by the client; a path on the "
			    "appliance is not accepted", path);
		if (len == 0)
			b64 = NULL;
		else if ((ret = util_b64_encode(data, len, &b64, &b64len,
		    &c->err)) != 0)
			return cli_error(c, ret);
		json_object_set_new(c->files_out, path,
		    json_string(b64 != NULL ? b64 : ""));
		free(b64);
		return CLI_EXIT_OK;
	}
	if ((ret = util_write_file_atomic(path, data, len, 0644,
	    &c->err)) != 0)
		return cli_error(c, ret);
	return CLI_EXIT_OK;
}

int
cli_run_remote(struct cli *c, enum config_role role, int argc, char **argv,
    char *what, size_t whatlen)
{
	const struct cli_cmd *cmd;
	enum config_role need;
	const char *files;
	int consumed = 0, ret;

	c->remote = 1;
	snprintf(what, whatlen, "%s", argc > 0 ? argv[0] : "");
	if (argc == 0 || (cmd = cli_find_cmd(argc, argv, &consumed)) == NULL)
		return cli_errorx(c, CLI_EXIT_USAGE, "unknown command '%s%s%s'",
		    argc > 0 ? argv[0] : "", argc > 1 ? " " : "",
		    argc > 1 ? argv[1] : "");
	cmd_name(cmd, what, whatlen);
	if (!cli_remote_rule(cmd, &need, &files))
		return cli_errorx(c, CLI_EXIT_DENIED, "%s runs only on the "
		    "appliance, not through the admin API", what);
	if (role > need)
		return cli_errorx(c, CLI_EXIT_DENIED, "%s needs the %s role; "
		    "this client has %s", what, cli_role_name(need),
		    cli_role_name(role));
	argc -= consumed - 1;
	argv += consumed - 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cli_help_cmd(c->out, cmd);
			return CLI_EXIT_OK;
		}
	}
	if ((ret = cli_open(c, cmd->needs)) != CLI_EXIT_OK)
		return ret;
	usage_fp = c->errout;
	optind = 0;	/* glibc: reinitialize getopt for the command */
	opterr = 0;	/* getopt would print to the daemon's stderr */
	ret = cmd->fn(c, argc, argv);
	opterr = 1;
	usage_fp = NULL;
	return ret;
}
