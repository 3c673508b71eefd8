/* main.c: hsmca, the operator's tool. Global options, then a command
 * looked up in the command tables (cli.c); each command parses its own
 * options. With --server (or [remote] server in the config) the command
 * line goes to hsmcad's admin API instead, which runs the same command
 * and sends back what it printed. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void
usage_all(FILE *fp)
{
	fprintf(fp, "usage: hsmca [-c CONFIG] [--json] [--server URL --cert FILE "
	    "--key FILE\n             [--cacert FILE]] COMMAND [ARGS]\n\n"
	    "Commands:\n");
	for (size_t t = 0; cli_cmd_tables[t] != NULL; t++)
		for (const struct cli_cmd *cmd = cli_cmd_tables[t];
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
	    "  --server URL       run the command through hsmcad's admin API\n"
	    "                     (default: [remote] server in the configuration)\n"
	    "  --cert FILE        the operator's certificate (PEM, with chain)\n"
	    "  --key FILE         its key (unencrypted PEM)\n"
	    "  --cacert FILE      trust for the server (default: the system's)\n"
	    "  -h, --help         this help; `hsmca COMMAND --help` for one command\n"
	    "  -V, --version      print the version\n"
	    "\nExit status: 0 success, 1 refused or failed, 2 usage error,\n"
	    "3 not found, 4 HSM unavailable or login refused, 5 store error,\n"
	    "6 refused by the admin API (role or identity).\n",
	    SYSCONFDIR);
}

int
main(int argc, char *argv[])
{
	enum { O_SERVER = 256, O_CERT, O_KEY, O_CACERT };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "cacert", required_argument, NULL, O_CACERT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *server = NULL, *cert = NULL, *key = NULL, *cacert = NULL;
	struct cli c;
	const struct cli_cmd *cmd;
	int ch, consumed = 0, ret;

	memset(&c, 0, sizeof(c));
	c.out = stdout;
	c.errout = stderr;
	/* Stop at the first non-option: the rest belongs to the command. */
	while ((ch = getopt_long(argc, argv, "+c:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			c.config_path = optarg;
			break;
		case 'j':
			c.json = 1;
			break;
		case O_SERVER:
			server = optarg;
			break;
		case O_CERT:
			cert = optarg;
			break;
		case O_KEY:
			key = optarg;
			break;
		case O_CACERT:
			cacert = optarg;
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
	if ((cmd = cli_find_cmd(argc, argv, &consumed)) == NULL) {
		if (cli_group_known(argv[0]))
			fprintf(stderr, "hsmca: unknown %s command '%s' (see "
			    "hsmca --help)\n", argv[0], argc > 1 ? argv[1] : "");
		else
			fprintf(stderr, "hsmca: unknown command '%s' (see "
			    "hsmca --help)\n", argv[0]);
		return CLI_EXIT_USAGE;
	}
	for (int i = consumed; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cli_help_cmd(stdout, cmd);
			return CLI_EXIT_OK;
		}
	}
	if (server == NULL && (cert != NULL || key != NULL || cacert != NULL)) {
		fprintf(stderr, "hsmca: --cert, --key and --cacert go with "
		    "--server\n");
		return CLI_EXIT_USAGE;
	}
	/* A device-side command never goes to the admin API; with [remote]
	 * in the config, the commands that may run remotely go there and
	 * the others (config check ...) run here. */
	if (server == NULL && !(cmd->needs & CLI_NO_CONFIG)) {
		enum config_role role;
		const char *files;

		if ((ret = cli_open(&c, 0)) != CLI_EXIT_OK)
			goto out;
		if (c.cfg->remote.server != NULL &&
		    !cli_remote_rule(cmd, &role, &files) &&
		    !(cmd->needs & CLI_SELF_REMOTE) &&
		    c.cfg->hsm.module == NULL &&
		    (cmd->group == NULL || strcmp(cmd->group, "config") != 0)) {
			ret = cli_errorx(&c, CLI_EXIT_USAGE, "%s%s%s runs only "
			    "on the appliance; %s has only [remote]",
			    cmd->group != NULL ? cmd->group : "",
			    cmd->group != NULL ? " " : "", cmd->name,
			    c.cfg->path != NULL ? c.cfg->path : "the "
			    "configuration");
			goto out;
		}
		if (c.cfg->remote.server != NULL &&
		    (cli_remote_rule(cmd, &role, &files) ||
		    (cmd->needs & CLI_SELF_REMOTE))) {
			server = c.cfg->remote.server;
			cert = c.cfg->remote.cert;
			key = c.cfg->remote.key;
			cacert = c.cfg->remote.ca;
		}
	}
	if (server != NULL && (cmd->needs & CLI_SELF_REMOTE)) {
		/* The command speaks to the admin API itself. */
		c.server = server;
		c.server_cert = cert;
		c.server_key = key;
		c.server_ca = cacert;
	} else if (server != NULL) {
		ret = cli_remote_main(&c, server, cert, key, cacert, argc, argv);
		goto out;
	}
	argc -= consumed - 1;
	argv += consumed - 1;
	if ((ret = cli_open(&c, c.server != NULL ? CLI_REMOTE_NEEDS(cmd->needs) :
	    cmd->needs)) != CLI_EXIT_OK)
		goto out;
	optind = 0;	/* glibc: reinitialize getopt for the command */
	ret = cmd->fn(&c, argc, argv);
out:
	hsm_close(c.hsm);
	store_close(c.st);
	config_free(c.cfg);
	return ret;
}
