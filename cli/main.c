/* main.c: hsmca, the operator's tool. Global options, then a command
 * looked up in the command tables; each command parses its own options. */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "hsmca/clock.h"

#include "cli.h"

static const struct cli_cmd *const cmd_tables[] = {
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
	NULL
};

static void
usage_all(FILE *fp)
{
	fprintf(fp, "usage: hsmca [-c CONFIG] [--json] COMMAND [ARGS]\n\n"
	    "Commands:\n");
	for (size_t t = 0; cmd_tables[t] != NULL; t++)
		for (const struct cli_cmd *cmd = cmd_tables[t];
		    cmd->name != NULL; cmd++) {
			char name[64];

			snprintf(name, sizeof(name), "%s%s%s",
			    cmd->group ? cmd->group : "",
			    cmd->group ? " " : "", cmd->name);
			fprintf(fp, "  %-16s %s\n", name, cmd->summary);
		}
	fprintf(fp, "\nGlobal options:\n"
	    "  -c, --config FILE  configuration (default: $HSMCA_CONFIG, then\n"
	    "                     %s/hsmca/hsmca.conf, then the demo defaults)\n"
	    "  --json             JSON output for scripts\n"
	    "  -h, --help         this help; `hsmca COMMAND --help` for one command\n"
	    "  -V, --version      print the version\n"
	    "\nExit status: 0 success, 1 refused or failed, 2 usage error,\n"
	    "3 not found, 4 HSM unavailable or login refused, 5 store error.\n",
	    SYSCONFDIR);
}

int
cli_usage(const struct cli_cmd *cmd)
{
	fprintf(stderr, "usage: hsmca %s%s%s %s\n", cmd->group ? cmd->group : "",
	    cmd->group ? " " : "", cmd->name, cmd->args ? cmd->args : "");
	return CLI_EXIT_USAGE;
}

static void
help_cmd(const struct cli_cmd *cmd)
{
	printf("usage: hsmca %s%s%s %s\n\n%s\n", cmd->group ? cmd->group : "",
	    cmd->group ? " " : "", cmd->name, cmd->args ? cmd->args : "",
	    cmd->summary);
	if (cmd->help != NULL)
		printf("\n%s", cmd->help);
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
	fprintf(stderr, "hsmca: %s\n", c->err.msg[0] != '\0' ? c->err.msg :
	    hsmca_strerror(code));
	return cli_exit_code(code);
}

int
cli_errorx(struct cli *c, int exit_code, const char *fmt, ...)
{
	va_list ap;

	fputs("hsmca: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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
	if ((needs & CLI_NEED_STORE) && c->st == NULL &&
	    (ret = store_open(c->cfg->store.path, &c->st, &c->err)) != 0)
		return cli_error(c, ret);
	if ((needs & CLI_NEED_HSM) && c->hsm == NULL &&
	    (ret = hsm_open(&c->cfg->hsm, &c->hsm, &c->err)) != 0)
		return cli_error(c, ret);
	c->ca.cfg = c->cfg;
	c->ca.st = c->st;
	c->ca.hsm = c->hsm;
	c->ca.actor = cli_actor();
	return CLI_EXIT_OK;
}

static const struct cli_cmd *
find_cmd(int argc, char **argv, int *consumed)
{
	for (size_t t = 0; cmd_tables[t] != NULL; t++)
		for (const struct cli_cmd *cmd = cmd_tables[t];
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

static int
group_known(const char *name)
{
	for (size_t t = 0; cmd_tables[t] != NULL; t++)
		for (const struct cli_cmd *cmd = cmd_tables[t];
		    cmd->name != NULL; cmd++)
			if (cmd->group != NULL && strcmp(cmd->group, name) == 0)
				return 1;
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct cli c;
	const struct cli_cmd *cmd;
	int ch, consumed = 0, ret;

	memset(&c, 0, sizeof(c));
	/* Stop at the first non-option: the rest belongs to the command. */
	while ((ch = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c.config_path = optarg;
			break;
		case 'j':
			c.json = 1;
			break;
		case 'h':
			usage_all(stdout);
			return CLI_EXIT_OK;
		case 'V':
			printf("hsmca %s\n", PACKAGE_VERSION);
			return CLI_EXIT_OK;
		default:
			usage_all(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage_all(stderr);
		return CLI_EXIT_USAGE;
	}
	if ((cmd = find_cmd(argc, argv, &consumed)) == NULL) {
		if (group_known(argv[0]))
			fprintf(stderr, "hsmca: unknown %s command '%s' (see "
			    "hsmca --help)\n", argv[0], argc > 1 ? argv[1] : "");
		else
			fprintf(stderr, "hsmca: unknown command '%s' (see "
			    "hsmca --help)\n", argv[0]);
		return CLI_EXIT_USAGE;
	}
	argc -= consumed - 1;
	argv += consumed - 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			help_cmd(cmd);
			return CLI_EXIT_OK;
		}
	}
	if ((ret = cli_open(&c, cmd->needs)) != CLI_EXIT_OK)
		goto out;
	optind = 0;	/* glibc: reinitialize getopt for the command */
	ret = cmd->fn(&c, argc, argv);
out:
	hsm_close(c.hsm);
	store_close(c.st);
	config_free(c.cfg);
	return ret;
}
