/* cmd-config.c: hsmca config check */
#include "config.h"

#include <stdio.h>

#include "cli.h"

static int
cmd_config_check(struct cli *c, int argc, char **argv)
{
	if (argc != 1)
		return cli_usage(&cmd_config_table[0]);
	/* cli_open parsed it; print the normalized form. */
	if (config_print(c->cfg, stdout) != 0)
		return cli_errorx(c, CLI_EXIT_FAIL, "cannot print the configuration");
	return CLI_EXIT_OK;
}

const struct cli_cmd cmd_config_table[] = {
	{ "config", "check", "",
	  "parse the configuration and print it normalized, defaults included",
	  NULL, 0, cmd_config_check },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
