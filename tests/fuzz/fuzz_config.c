/* fuzz_config.c: the hsmca.conf parser (lib/config.c) on arbitrary
 * text. Invariants: a refusal has a one-line reason and no config; an
 * accepted config prints (config_print) to text that parses again and
 * prints the same, as the golden tests check for the files in
 * tests/unit/golden. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsmca/config.h"

#include "fuzz.h"

/* config_print into memory; the text is malloc'd. */
static char *
print(const struct config *cfg, size_t *len)
{
	char *buf = NULL;
	FILE *fp;

	FUZZ_CHECK((fp = open_memstream(&buf, len)) != NULL);
	FUZZ_CHECK(config_print(cfg, fp) == 0);
	FUZZ_CHECK(fclose(fp) == 0);
	return buf;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct config *cfg = NULL, *cfg2 = NULL;
	struct hsmca_err e;
	char *out, *out2;
	size_t olen, olen2;
	int ret;

	err_clear(&e);
	ret = config_parse((const char *)data, len, "fuzz.conf", &cfg, &e);
	if (ret != 0) {
		FUZZ_CHECK(ret < 0 && cfg == NULL);
		FUZZ_CHECK_REASON(e.msg);
		return 0;
	}
	FUZZ_CHECK(cfg != NULL);
	for (size_t i = 0; i < cfg->nest; i++) {
		FUZZ_CHECK(config_est_label(cfg, cfg->est[i].label) != NULL);
		FUZZ_CHECK(config_profile(cfg, cfg->est[i].profile) != NULL);
	}
	out = print(cfg, &olen);
	if (config_parse(out, olen, "reprint", &cfg2, &e) != 0) {
		fprintf(stderr, "reprint refused: %s\n", e.msg);
		FUZZ_CHECK(!"config_print wrote what config_parse refuses");
	}
	out2 = print(cfg2, &olen2);
	FUZZ_CHECK(olen == olen2 && memcmp(out, out2, olen) == 0);
	free(out);
	free(out2);
	config_free(cfg);
	config_free(cfg2);
	return 0;
}
