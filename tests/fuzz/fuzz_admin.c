/* fuzz_admin.c: a POST /api/v1/run body as hsmcad's admin API takes it
 * apart (admin_parse_request), and the command it names looked up the
 * way admin.c authorizes it (cli_find_cmd, cli_remote_rule), without the
 * TLS, the store and the HSM.
 *
 * Input: the request body.
 *
 * Invariants: a refusal is a 400 with a one-line reason and no parts;
 * an accepted body has 1 to 64 argv strings without NUL of at most 4096
 * bytes, and only "@in:N" string members in files; a command the rules
 * let through has a role, and none that runs only on the appliance
 * (token, config, est, batch, ca init, ca import) is let through. */
#include "config.h"

#include <string.h>

#include <jansson.h>

#include "../../cli/cli.h"
#include "../../daemon/hsmcad.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const char *const local_only[] = {
		"token", "config", "est", "batch", NULL
	};
	struct admin_request r;
	const struct cli_cmd *cmd;
	enum config_role role;
	const char *files, *k;
	char why[256], *words[3] = { NULL, NULL, NULL };
	json_t *v;
	size_t i;
	int status, consumed = 0;

	memset(&r, 0, sizeof(r));
	why[0] = '\0';
	status = admin_parse_request((const char *)data, len, &r, why,
	    sizeof(why));
	if (status != 0) {
		FUZZ_CHECK(status == 400);
		FUZZ_CHECK_REASON(why);
		FUZZ_CHECK(r.argv == NULL && r.files == NULL);
		return 0;
	}
	FUZZ_CHECK(json_is_array(r.argv));
	FUZZ_CHECK(json_array_size(r.argv) >= 1 &&
	    json_array_size(r.argv) <= 64);
	json_array_foreach(r.argv, i, v) {
		FUZZ_CHECK(json_is_string(v));
		FUZZ_CHECK(json_string_length(v) <= 4096);
		FUZZ_CHECK(strlen(json_string_value(v)) ==
		    json_string_length(v));
	}
	if (r.files != NULL)
		json_object_foreach(r.files, k, v) {
			FUZZ_CHECK(strncmp(k, "@in:", 4) == 0);
			FUZZ_CHECK(json_is_string(v));
		}
	for (i = 0; i < 2 && i < json_array_size(r.argv); i++)
		words[i] = (char *)json_string_value(json_array_get(r.argv, i));
	if ((cmd = cli_find_cmd(words[1] != NULL ? 2 : 1, words,
	    &consumed)) != NULL && cli_remote_rule(cmd, &role, &files)) {
		FUZZ_CHECK(role < CONFIG_ROLE_MAX);
		for (i = 0; local_only[i] != NULL; i++)
			FUZZ_CHECK(cmd->group == NULL ||
			    strcmp(cmd->group, local_only[i]) != 0);
		FUZZ_CHECK(!(cmd->group != NULL && strcmp(cmd->group, "ca") ==
		    0 && (strcmp(cmd->name, "init") == 0 ||
		    strcmp(cmd->name, "import") == 0 ||
		    strcmp(cmd->name, "import-cert") == 0)));
	}
	json_decref(r.argv);
	json_decref(r.files);
	return 0;
}
