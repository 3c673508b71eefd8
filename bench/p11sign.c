/* p11sign.c: the raw signing rate of a PKCS#11 token, the first term of
 * the issuance pipeline ceiling (../shared/BENCH.md). Logs in, generates
 * a token key (CKA_TOKEN, sensitive, non-extractable), then each thread
 * loops on C_SignInit + C_Sign over its own session for SECONDS.
 *
 *   p11sign MODULE TOKEN-LABEL PIN-FILE ec|rsa THREADS SECONDS
 *
 * Prints "p11sign <type> <threads> <signatures/s>". */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot;
static CK_OBJECT_HANDLE priv;
static CK_MECHANISM mech;
static double seconds;

struct worker {
	pthread_t	t;
	unsigned long	n;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
worker(void *arg)
{
	struct worker *w = arg;
	CK_SESSION_HANDLE s;
	CK_BYTE digest[32], sig[512];
	CK_ULONG siglen;
	double end;

	memset(digest, 0x5a, sizeof(digest));
	if (p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
		return NULL;
	end = now() + seconds;
	while (now() < end) {
		siglen = sizeof(sig);
		if (p11->C_SignInit(s, &mech, priv) != CKR_OK ||
		    p11->C_Sign(s, digest, sizeof(digest), sig, &siglen) != CKR_OK)
			break;
		w->n++;
	}
	p11->C_CloseSession(s);
	return NULL;
}

int
main(int argc, char *argv[])
{
	static CK_BYTE p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
	    0x03, 0x01, 0x07 };
	static CK_BYTE e65537[] = { 0x01, 0x00, 0x01 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = 2048, nslots = 16;
	CK_SLOT_ID slots[16];
	CK_TOKEN_INFO ti;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE pub;
	CK_MECHANISM gen;
	CK_C_INITIALIZE_ARGS init = { .flags = CKF_OS_LOCKING_OK };
	CK_RV (*getlist)(CK_FUNCTION_LIST_PTR_PTR);
	struct worker *w;
	char label[33], pin[256];
	FILE *fp;
	void *dl;
	int ec, threads;
	unsigned long total = 0;
	double t0;

	if (argc != 7) {
		fprintf(stderr, "usage: p11sign MODULE TOKEN PIN-FILE ec|rsa "
		    "THREADS SECONDS\n");
		return 2;
	}
	ec = strcmp(argv[4], "ec") == 0;
	threads = atoi(argv[5]);
	seconds = atof(argv[6]);
	if ((fp = fopen(argv[3], "r")) == NULL || fgets(pin, sizeof(pin), fp) == NULL)
		return 1;
	fclose(fp);
	pin[strcspn(pin, "\r\n")] = '\0';
	if ((dl = dlopen(argv[1], RTLD_NOW)) == NULL ||
	    (getlist = (CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(dl,
	    "C_GetFunctionList")) == NULL || getlist(&p11) != CKR_OK ||
	    p11->C_Initialize(&init) != CKR_OK ||
	    p11->C_GetSlotList(CK_TRUE, slots, &nslots) != CKR_OK)
		return 1;
	snprintf(label, sizeof(label), "%-32s", argv[2]);
	for (CK_ULONG i = 0; i < nslots; i++)
		if (p11->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
		    memcmp(ti.label, label, 32) == 0)
			slot = slots[i];
	if (p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
	    NULL, &s) != CKR_OK ||
	    p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)) != CKR_OK)
		return 1;
	memset(pin, 0, sizeof(pin));
	{
		CK_ATTRIBUTE ecpub[] = {
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_VERIFY, &yes, sizeof(yes) },
			{ CKA_EC_PARAMS, p256, sizeof(p256) },
		};
		CK_ATTRIBUTE rsapub[] = {
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_VERIFY, &yes, sizeof(yes) },
			{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
			{ CKA_PUBLIC_EXPONENT, e65537, sizeof(e65537) },
		};
		CK_ATTRIBUTE prv[] = {
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_SENSITIVE, &yes, sizeof(yes) },
			{ CKA_EXTRACTABLE, &no, sizeof(no) },
			{ CKA_SIGN, &yes, sizeof(yes) },
		};

		memset(&gen, 0, sizeof(gen));
		gen.mechanism = ec ? CKM_EC_KEY_PAIR_GEN :
		    CKM_RSA_PKCS_KEY_PAIR_GEN;
		if (p11->C_GenerateKeyPair(s, &gen, ec ? ecpub : rsapub,
		    ec ? 3 : 4, prv, 5, &pub, &priv) != CKR_OK)
			return 1;
	}
	memset(&mech, 0, sizeof(mech));
	mech.mechanism = ec ? CKM_ECDSA : CKM_RSA_PKCS;
	if ((w = calloc((size_t)threads, sizeof(*w))) == NULL)
		return 1;
	t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&w[i].t, NULL, worker, &w[i]);
	for (int i = 0; i < threads; i++) {
		pthread_join(w[i].t, NULL);
		total += w[i].n;
	}
	printf("p11sign %s %d %.0f\n", argv[4], threads, total / (now() - t0));
	p11->C_DestroyObject(s, priv);
	p11->C_DestroyObject(s, pub);
	p11->C_Logout(s);
	p11->C_CloseSession(s);
	p11->C_Finalize(NULL);
	return 0;
}
