/* cmd-token.c: hsmca token init | token check */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int
cmd_token_init(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "so-pin-source", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	const char *so = "env:HSMCA_SO_PIN";
	int ch, ret;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 's')
			return cli_usage(&cmd_token_table[0]);
		so = optarg;
	}
	if (optind != argc)
		return cli_usage(&cmd_token_table[0]);
	if ((ret = hsm_init_token(&c->cfg->hsm, so, &c->err)) != 0)
		return cli_error(c, ret);
	printf("token initialized: %s\n", c->cfg->hsm.token);
	return CLI_EXIT_OK;
}

static int
cmd_token_check(struct cli *c, int argc, char **argv)
{
	if (argc != 1)
		return cli_usage(&cmd_token_table[1]);
	/* cli_open already logged in; getting here is the check. */
	printf("token '%s' reachable, login OK\n", hsm_token_label(c->hsm));
	return CLI_EXIT_OK;
}

const struct cli_cmd cmd_token_table[] = {
	{ "token", "init", "[--so-pin-source SRC]",
	  "initialize a SoftHSM2 token for demos and tests",
	  "  --so-pin-source SRC   file:PATH or env:NAME (default env:HSMCA_SO_PIN);\n"
	  "                        the user PIN comes from the config's pin-source\n",
	  0, cmd_token_init },
	{ "token", "check", "", "open the token and log in", NULL,
	  CLI_NEED_HSM, cmd_token_check },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
