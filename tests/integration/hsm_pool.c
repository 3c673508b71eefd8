/* hsm_pool.c: several threads sign at once through one struct hsm, on a
 * real SoftHSM2 token. Every signature must verify with the public key,
 * and no more signatures may be in flight than the configured sessions.
 * Prints TAP; run by hsm-pool.t with a config naming a fresh token. */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hsmca/config.h"
#include "hsmca/hsm.h"

#define THREADS	6
#define ROUNDS	150

struct shared {
	struct hsm	*h;
	struct hsm_key	*key;
	atomic_int	 in_flight;
	atomic_int	 max_in_flight;
	atomic_int	 bad;
	atomic_int	 done;
};

static void *
worker(void *arg)
{
	struct shared *s = arg;

	for (int i = 0; i < ROUNDS; i++) {
		unsigned char msg[64], sig[512];
		size_t siglen = sizeof(sig);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		int ok, now;

		RAND_bytes(msg, sizeof(msg));
		hsm_sign_enter(s->h);
		now = atomic_fetch_add(&s->in_flight, 1) + 1;
		for (int m = atomic_load(&s->max_in_flight); now > m &&
		    !atomic_compare_exchange_weak(&s->max_in_flight, &m, now);)
			;
		ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
		    hsm_key_private(s->key)) == 1 &&
		    EVP_DigestSign(md, sig, &siglen, msg, sizeof(msg)) == 1;
		atomic_fetch_sub(&s->in_flight, 1);
		hsm_sign_leave(s->h);
		EVP_MD_CTX_reset(md);
		if (ok)
			ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
			    hsm_key_public(s->key)) == 1 &&
			    EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg)) == 1;
		EVP_MD_CTX_free(md);
		if (!ok)
			atomic_fetch_add(&s->bad, 1);
		atomic_fetch_add(&s->done, 1);
	}
	return NULL;
}

static int n;

static void tap(int, const char *, ...) __attribute__((format(printf, 2, 3)));

static void
tap(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", ok ? "ok" : "not ok", ++n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

int
main(int argc, char *argv[])
{
	static const enum key_type types[] = { KEY_EC_P256, KEY_RSA_2048 };
	struct config *cfg = NULL;
	struct hsmca_err e;
	struct shared s;
	pthread_t th[THREADS];
	int failed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: hsm_pool CONFIG\n");
		return 2;
	}
	memset(&s, 0, sizeof(s));
	if (config_load(argv[1], &cfg, &e) != 0 ||
	    hsm_open(&cfg->hsm, &s.h, &e) != 0) {
		printf("Bail out! %s\n", e.msg);
		return 1;
	}
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		const char *name = keytype_name(types[t]);

		if (hsm_generate_key(s.h, types[t], name, &s.key, &e) != 0) {
			printf("Bail out! %s\n", e.msg);
			return 1;
		}
		atomic_store(&s.bad, 0);
		atomic_store(&s.done, 0);
		atomic_store(&s.max_in_flight, 0);
		for (int i = 0; i < THREADS; i++)
			pthread_create(&th[i], NULL, worker, &s);
		for (int i = 0; i < THREADS; i++)
			pthread_join(th[i], NULL);
		tap(atomic_load(&s.done) == THREADS * ROUNDS,
		    "%s: every signature of %d threads completed (%d)", name,
		    THREADS, atomic_load(&s.done));
		tap(atomic_load(&s.bad) == 0,
		    "%s: every signature verified (%d bad)", name,
		    atomic_load(&s.bad));
		tap(atomic_load(&s.max_in_flight) <= cfg->hsm.sessions,
		    "%s: in-flight signatures within the session cap (max %d)",
		    name, atomic_load(&s.max_in_flight));
		tap(atomic_load(&s.max_in_flight) > 1,
		    "%s: signatures really ran concurrently (max %d)", name,
		    atomic_load(&s.max_in_flight));
		failed += atomic_load(&s.bad) != 0;
		hsm_key_free(s.key);
		s.key = NULL;
	}
	printf("1..%d\n", n);
	hsm_close(s.h);
	config_free(cfg);
	return failed ? 1 : 0;
}
