/* replay.c: main() of a fuzz target built without libFuzzer. Runs each
 * file of the target's seed corpus once through LLVMFuzzerTestOneInput
 * and prints TAP, so `make check` replays every corpus: an input that
 * crashes, trips a sanitizer or breaks an invariant fails the test.
 *
 *   fuzz_csr                 every file in $top_srcdir/tests/fuzz/corpus/csr
 *   fuzz_csr FILE|DIR ...    those files, and the files in those dirs */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hsmca/util.h"

#include "fuzz.h"

/* Larger than any input libFuzzer is run with (-max_len in
 * bench/fuzz.sh); a bigger file is a mistake in the corpus. */
#define REPLAY_MAX_INPUT	(1024 * 1024)

/* Not every target has an initializer; libFuzzer treats it as weak too. */
#pragma weak LLVMFuzzerInitialize

struct replay {
	char	**paths;
	size_t	  n, cap;
};

static int
replay_add(struct replay *r, const char *path)
{
	char **np;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		if ((np = reallocarray(r->paths, r->cap, sizeof(*np))) == NULL)
			return -1;
		r->paths = np;
	}
	if ((r->paths[r->n] = strdup(path)) == NULL)
		return -1;
	r->n++;
	return 0;
}

static int
replay_skip(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* A file, or the files of a directory in name order. */
static int
replay_collect(struct replay *r, const char *path)
{
	struct dirent **ents = NULL;
	struct stat sb;
	char sub[PATH_MAX];
	int i, n, ret = 0;

	if (stat(path, &sb) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode))
		return replay_add(r, path);
	if ((n = scandir(path, &ents, replay_skip, alphasort)) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (ret == 0) {
			snprintf(sub, sizeof(sub), "%s/%s", path,
			    ents[i]->d_name);
			ret = replay_add(r, sub);
		}
		free(ents[i]);
	}
	free(ents);
	return ret;
}

int
main(int argc, char *argv[])
{
	struct replay r = { NULL, 0, 0 };
	unsigned char *buf, *exact;
	const char *top, *name;
	char self[PATH_MAX], corpus[PATH_MAX];
	size_t len, i;
	int failed = 0;

	if (argc > 1) {
		for (int a = 1; a < argc; a++)
			if (replay_collect(&r, argv[a]) != 0)
				return 1;
	} else {
		/* fuzz_csr replays corpus/csr. */
		snprintf(self, sizeof(self), "%s", argv[0]);
		name = basename(self);
		if (strncmp(name, "fuzz_", 5) == 0)
			name += 5;
		if ((top = getenv("top_srcdir")) == NULL)
			top = ".";
		snprintf(corpus, sizeof(corpus), "%s/tests/fuzz/corpus/%s",
		    top, name);
		if (replay_collect(&r, corpus) != 0)
			return 1;
	}
	if (r.n == 0) {
		printf("1..0 # SKIP no inputs\n");
		return 0;
	}
	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	printf("1..%zu\n", r.n);
	for (i = 0; i < r.n; i++) {
		/* A crash ends the run here, with the file named above. */
		fprintf(stderr, "replay: %s\n", r.paths[i]);
		if (util_read_file(r.paths[i], REPLAY_MAX_INPUT, &buf, &len,
		    NULL) != 0) {
			printf("not ok %zu - %s: unreadable or over %d bytes\n",
			    i + 1, r.paths[i], REPLAY_MAX_INPUT);
			failed = 1;
			continue;
		}
		/* An exact copy: ASan sees a read one byte past the input. */
		if ((exact = malloc(len ? len : 1)) == NULL) {
			printf("Bail out! out of memory\n");
			return 1;
		}
		memcpy(exact, buf, len);
		free(buf);
		LLVMFuzzerTestOneInput(exact, len);
		free(exact);
		printf("ok %zu - %s\n", i + 1, r.paths[i]);
		fflush(stdout);
	}
	for (i = 0; i < r.n; i++)
		free(r.paths[i]);
	free(r.paths);
	return failed;
}
