/* pop.h: proof of possession of a CA generation's key. A cloud service
 * (Azure IoT Hub / DPS, AWS IoT) hands out a code; the CA answers with a
 * short-lived verification certificate whose subject is CN=code, signed
 * by that generation's key in the token. */
#ifndef HSMCA_POP_H
#define HSMCA_POP_H

#include <stdint.h>
#include <time.h>

#include "hsmca/ca.h"
#include "hsmca/err.h"
#include "hsmca/issue.h"
#include "hsmca/store.h"

#define POP_CODE_MAX		64		/* AWS registration codes: 64 hex */
#define POP_VALIDITY_DEFAULT	(2 * 86400)
#define POP_VALIDITY_MAX	(30 * 86400)
#define POP_PROFILE		"pop"		/* the profile name it is recorded under */

struct pop_request {
	const char	*code;
	int64_t		 validity;	/* seconds; 0: POP_VALIDITY_DEFAULT */
	const char	*requester;	/* "cli:root" ... */
	time_t		 now;
};

/* 0 if code is 1..POP_CODE_MAX characters of [A-Za-z0-9-]; otherwise
 * HSMCA_ERR_ARG naming what is wrong. */
int	pop_check_code(const char *code, struct hsmca_err *e);

/* Issue the verification certificate under generation g (active or
 * inactive, not expired): a throwaway EC P-256 subject key, CA:FALSE,
 * digitalSignature, pre-sign lint, HSM signature, verify-after-sign. It
 * is recorded in the store like any issued certificate (profile "pop"),
 * so it is listed, can be revoked and counts against the serial space.
 * Nothing is recorded when the code or the generation is refused. */
int	pop_issue(struct ca_ctx *c, const struct store_generation *g,
	    const struct pop_request *req, struct issue_result *out,
	    struct hsmca_err *e);

#endif
