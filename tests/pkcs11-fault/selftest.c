/* selftest.c: proves the shim's detectors fire. Through the shim it
 * uses one session from two threads at once (the first one held inside
 * C_Login by fault=hang) and opens more sessions than the cap; the test
 * then looks for both VIOLATION lines. Usage: selftest SHIM CONTROL
 * with PKCS11_FAULT_CONTROL, PKCS11_FAULT_LOG and
 * PKCS11_FAULT_MAX_SESSIONS=2 set. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;
static CK_SESSION_HANDLE s;

static void *
hold(void *arg)
{
	(void)p11->C_Login(s, CKU_USER, (CK_UTF8CHAR *)"0000", 4);
	return NULL;
}

static void
control(const char *path, const char *what)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fprintf(fp, "%s\n", what) < 0 || fclose(fp) != 0) {
		perror(path);
		exit(1);
	}
}

int
main(int argc, char *argv[])
{
	CK_RV (*getlist)(CK_FUNCTION_LIST_PTR_PTR);
	struct timespec ts = { 0, 200 * 1000 * 1000 };
	CK_SESSION_HANDLE more[3];
	CK_SESSION_INFO info;
	CK_SLOT_ID slots[8];
	CK_ULONG n = 8;
	pthread_t t;
	void *dl;

	if (argc != 3 || (dl = dlopen(argv[1], RTLD_NOW)) == NULL ||
	    (*(void **)&getlist = dlsym(dl, "C_GetFunctionList")) == NULL ||
	    getlist(&p11) != CKR_OK || p11->C_Initialize(NULL) != CKR_OK ||
	    p11->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK || n == 0 ||
	    p11->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL,
	    &s) != CKR_OK) {
		fprintf(stderr, "selftest: cannot open a session through %s\n",
		    argc > 1 ? argv[1] : "?");
		return 1;
	}
	control(argv[2], "fault=hang on=login");
	pthread_create(&t, NULL, hold, NULL);
	nanosleep(&ts, NULL);
	(void)p11->C_GetSessionInfo(s, &info);	/* while hold() is inside */
	control(argv[2], "fault=none");
	pthread_join(t, NULL);
	for (int i = 0; i < 3; i++)
		(void)p11->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL,
		    NULL, &more[i]);
	p11->C_Finalize(NULL);
	return 0;
}
