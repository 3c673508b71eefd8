/* fuzz.h: what every target in tests/fuzz defines, and the check that
 * makes a broken invariant a crash libFuzzer (and the replay) reports. */
#ifndef HSMCA_FUZZ_H
#define HSMCA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Called once before the first input (libFuzzer's optional hook). */
int	LLVMFuzzerInitialize(int *argc, char ***argv);
/* One input; always 0 (libFuzzer reserves other values). */
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* An invariant of the code under test: abort, so the input is kept. */
#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/* A refusal's message: present, one line (DESIGN.md: "a one-line
 * reason"). */
#define FUZZ_CHECK_REASON(msg) do {					\
	FUZZ_CHECK((msg)[0] != '\0');					\
	for (const char *p_ = (msg); *p_ != '\0'; p_++)		\
		FUZZ_CHECK(*p_ != '\n' && *p_ != '\r');			\
} while (0)

#endif
