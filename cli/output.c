/* output.c: aligned tables for people, JSON for scripts. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsmca/clock.h"
#include "hsmca/util.h"

#include "cli.h"

json_t *
out_time(time_t t)
{
	char buf[32];

	if (t <= 0)
		return json_null();
	return json_string(clock_format(t, buf, sizeof(buf)));
}

/* A member as text: strings as they are, numbers and booleans printed,
 * null as "-". Returns a pointer to buf or into the JSON value. */
static const char *
cell(json_t *v, char *buf, size_t len)
{
	if (v == NULL || json_is_null(v))
		return "-";
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
		return buf;
	}
	if (json_is_boolean(v))
		return json_is_true(v) ? "yes" : "no";
	snprintf(buf, len, "?");
	return buf;
}

void
out_list(const struct cli *c, json_t *rows, const struct out_col *cols)
{
	size_t ncols = 0, i, j;
	size_t width[32];
	char buf[64];
	json_t *row;

	if (c->json) {
		json_dumpf(rows, c->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', c->out);
		return;
	}
	while (cols[ncols].key != NULL && ncols < 32)
		ncols++;
	for (j = 0; j < ncols; j++)
		width[j] = strlen(cols[j].title);
	json_array_foreach(rows, i, row)
		for (j = 0; j < ncols; j++) {
			size_t w = strlen(cell(json_object_get(row,
			    cols[j].key), buf, sizeof(buf)));

			if (w > width[j])
				width[j] = w;
		}
	for (j = 0; j < ncols; j++)
		fprintf(c->out, "%-*s%s", j + 1 < ncols ? (int)width[j] : 0,
		    cols[j].title, j + 1 < ncols ? "  " : "\n");
	json_array_foreach(rows, i, row)
		for (j = 0; j < ncols; j++)
			fprintf(c->out, "%-*s%s", j + 1 < ncols ? (int)width[j] : 0,
			    cell(json_object_get(row, cols[j].key), buf,
			    sizeof(buf)), j + 1 < ncols ? "  " : "\n");
}

void
out_object(const struct cli *c, json_t *obj, const struct out_col *fields)
{
	size_t w = 0;
	char buf[64];

	if (c->json) {
		json_dumpf(obj, c->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', c->out);
		return;
	}
	for (size_t j = 0; fields[j].key != NULL; j++)
		if (strlen(fields[j].title) > w)
			w = strlen(fields[j].title);
	for (size_t j = 0; fields[j].key != NULL; j++) {
		json_t *v = json_object_get(obj, fields[j].key);

		if (v == NULL)
			continue;
		fprintf(c->out, "%s:%*s %s\n", fields[j].title,
		    (int)(w - strlen(fields[j].title)), "",
		    cell(v, buf, sizeof(buf)));
	}
}

int
cli_number(struct cli *c, const char *what, const char *s, long long min,
    long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
		cli_errorx(c, CLI_EXIT_USAGE, "%s must be a number from %lld "
		    "to %lld, not '%s'", what, min, max, s);
		return -1;
	}
	*out = v;
	return 0;
}

int
cli_generation_id(struct cli *c, const char *ref, int64_t *id)
{
	struct store_generation g;
	int ret;

	memset(&g, 0, sizeof(g));
	if ((ret = store_find_generation(c->st, ref, &g, &c->err)) != 0)
		return cli_error(c, ret);
	*id = g.id;
	store_generation_free_fields(&g);
	return CLI_EXIT_OK;
}
