/* pkcs11-fault.c: a PKCS#11 module for tests that wraps a real one
 * (SoftHSM2) and injects faults, so hsmcad's fault handling can be
 * proved against a real token.
 *
 * Environment:
 *   PKCS11_FAULT_MODULE   the real module (default
 *                         /usr/lib/softhsm/libsofthsm2.so)
 *   PKCS11_FAULT_CONTROL  a file re-read whenever it changes, so a test
 *                         can switch faults while the process runs
 *   PKCS11_FAULT          the settings when there is no control file
 *   PKCS11_FAULT_LOG      where events and violations are appended
 *   PKCS11_FAULT_MAX_SESSIONS  open sessions above this are a violation
 *
 * Settings (the control file or PKCS11_FAULT), words separated by blanks:
 *   fault=none|device|session|login|removed|hang|stall|corrupt|refuse|rv|
 *         crash
 *   rate=PERCENT          of the calls concerned (default 100)
 *   on=sign,open,login,destroy,find,generate,copy  the calls concerned
 *                         (default the first three; destroy:
 *                         C_DestroyObject; find: C_FindObjectsInit, a key
 *                         lookup; generate: C_GenerateKeyPair; copy:
 *                         C_CopyObject)
 *   trace                 log "sign-init token" or "sign-init session"
 *                         for each C_SignInit: which object signs, the
 *                         token key or a session copy of it
 *   label=PREFIX          only keys whose CKA_LABEL starts with PREFIX
 *                         (generate)
 *
 *   device   CKR_DEVICE_ERROR, nothing else changes
 *   session  the session is really closed, CKR_SESSION_HANDLE_INVALID
 *   login    the token is really logged out, CKR_USER_NOT_LOGGED_IN
 *   removed  on switching to it, every session is really closed; then
 *            every call touching the token answers CKR_TOKEN_NOT_PRESENT
 *            and C_GetSlotInfo reports no token, until the fault goes
 *   hang     the call sleeps while the setting stays "hang" (at most
 *            60 s), then answers CKR_DEVICE_ERROR
 *   stall    the call sleeps while the setting stays "stall" (at most
 *            60 s), then goes on to the real module: a slow token
 *   corrupt  C_Sign signs, then one byte of the signature is flipped
 *   refuse   CKR_ACTION_PROHIBITED, nothing else changes: the token
 *            refuses this request (as for an object not destroyable)
 *   rv       the value of rv=VALUE (C syntax: 0x80000123), nothing else
 *            changes: a code the application may not know
 *   crash    C_GenerateKeyPair makes the key pair, then the process is
 *            killed (SIGKILL) before the call returns: the application
 *            stops between making a key and recording it
 *
 * Whatever the settings, the shim watches what the application does and
 * appends a "VIOLATION" line to the log when one session is used by two
 * threads at once, or when more sessions are open than the cap. Other
 * lines: "inject FN FAULT", "login RV", "open-session RV", "max-open N",
 * "copy RV" (every C_CopyObject). */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define DEFAULT_MODULE	"/usr/lib/softhsm/libsofthsm2.so"
#define MAX_TRACKED	1024
#define HANG_MAX_MS	60000

enum fault {
	F_NONE, F_DEVICE, F_SESSION, F_LOGIN, F_REMOVED, F_HANG, F_CORRUPT,
	F_STALL, F_REFUSE, F_RV, F_CRASH
};

static const char *const fault_names[] = {
	"none", "device", "session", "login", "removed", "hang", "corrupt",
	"stall", "refuse", "rv", "crash"
};

#define ON_SIGN		0x1
#define ON_OPEN		0x2
#define ON_LOGIN	0x4
#define ON_DESTROY	0x8
#define ON_FIND		0x10
#define ON_GENERATE	0x20
#define ON_COPY		0x40

struct settings {
	enum fault	fault;
	int		rate;
	int		on;
	CK_RV		rv;		/* fault=rv */
	char		label[64];	/* label=: a CKA_LABEL prefix */
	int		trace;		/* log each C_SignInit's key kind */
};

/* An open session, and the thread inside it, if any. */
struct tracked {
	CK_SESSION_HANDLE	h;
	CK_SLOT_ID		slot;
	int			busy;
	pthread_t		thread;
};

static pthread_mutex_t	 mtx = PTHREAD_MUTEX_INITIALIZER;
static void		*dl;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST	 wrapped;
static struct settings	 cur;
static struct stat	 control_sb;
static int		 control_seen;
static struct tracked	 open_s[MAX_TRACKED];
static int		 nopen, max_open, cap = -1;
static unsigned long	 ncalls[9];

static void
logf_(const char *fmt, ...)
{
	const char *path = getenv("PKCS11_FAULT_LOG");
	va_list ap;
	FILE *fp;

	if (path == NULL || (fp = fopen(path, "a")) == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fputc('\n', fp);
	fclose(fp);
}

static void
parse(const char *s, struct settings *st)
{
	char buf[512], *p, *save = NULL;

	st->fault = F_NONE;
	st->rate = 100;
	st->on = ON_SIGN | ON_OPEN | ON_LOGIN;
	st->rv = CKR_GENERAL_ERROR;
	st->label[0] = '\0';
	st->trace = 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (p = strtok_r(buf, " \t\r\n", &save); p != NULL;
	    p = strtok_r(NULL, " \t\r\n", &save)) {
		if (strncmp(p, "fault=", 6) == 0) {
			for (size_t i = 0; i < sizeof(fault_names) /
			    sizeof(fault_names[0]); i++)
				if (strcmp(p + 6, fault_names[i]) == 0)
					st->fault = (enum fault)i;
		} else if (strncmp(p, "rate=", 5) == 0)
			st->rate = atoi(p + 5);
		else if (strncmp(p, "rv=", 3) == 0)
			st->rv = (CK_RV)strtoul(p + 3, NULL, 0);
		else if (strcmp(p, "trace") == 0)
			st->trace = 1;
		else if (strncmp(p, "label=", 6) == 0)
			snprintf(st->label, sizeof(st->label), "%s", p + 6);
		else if (strncmp(p, "on=", 3) == 0) {
			st->on = 0;
			if (strstr(p, "sign") != NULL)
				st->on |= ON_SIGN;
			if (strstr(p, "open") != NULL)
				st->on |= ON_OPEN;
			if (strstr(p, "login") != NULL)
				st->on |= ON_LOGIN;
			if (strstr(p, "destroy") != NULL)
				st->on |= ON_DESTROY;
			if (strstr(p, "find") != NULL)
				st->on |= ON_FIND;
			if (strstr(p, "generate") != NULL)
				st->on |= ON_GENERATE;
			if (strstr(p, "copy") != NULL)
				st->on |= ON_COPY;
		}
	}
}

static void close_all_real(void);

/* The current settings; the control file is re-read when it changed.
 * Called with mtx held. */
static struct settings
settings_locked(void)
{
	const char *path = getenv("PKCS11_FAULT_CONTROL");
	struct settings next;
	struct stat sb;
	char buf[512];
	FILE *fp;
	size_t n;

	if (path == NULL || stat(path, &sb) != 0) {
		if (!control_seen) {
			parse(getenv("PKCS11_FAULT") != NULL ?
			    getenv("PKCS11_FAULT") : "", &cur);
			control_seen = 1;
		}
		return cur;
	}
	if (control_seen && sb.st_ino == control_sb.st_ino &&
	    sb.st_size == control_sb.st_size &&
	    sb.st_mtim.tv_sec == control_sb.st_mtim.tv_sec &&
	    sb.st_mtim.tv_nsec == control_sb.st_mtim.tv_nsec)
		return cur;
	if ((fp = fopen(path, "r")) == NULL)
		return cur;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	parse(buf, &next);
	control_sb = sb;
	control_seen = 1;
	if (next.fault != cur.fault)
		logf_("control %s", fault_names[next.fault]);
	/* A token pulled out: every session and the login are gone. */
	if (next.fault == F_REMOVED && cur.fault != F_REMOVED)
		close_all_real();
	cur = next;
	return cur;
}

static struct settings
settings(void)
{
	struct settings st;

	pthread_mutex_lock(&mtx);
	st = settings_locked();
	pthread_mutex_unlock(&mtx);
	return st;
}

/* Does this call get the fault? Spreads rate% of the calls evenly. */
static int
hit(struct settings st, int which, int idx)
{
	unsigned long n;
	int yes;

	if (st.fault == F_NONE || !(st.on & which))
		return 0;
	pthread_mutex_lock(&mtx);
	n = ++ncalls[idx];
	yes = (n * (unsigned long)st.rate) / 100 !=
	    ((n - 1) * (unsigned long)st.rate) / 100;
	pthread_mutex_unlock(&mtx);
	return yes;
}

static struct tracked *
find_locked(CK_SESSION_HANDLE h)
{
	for (int i = 0; i < nopen; i++)
		if (open_s[i].h == h)
			return &open_s[i];
	return NULL;
}

static void
track_open(CK_SLOT_ID slot, CK_SESSION_HANDLE h)
{
	pthread_mutex_lock(&mtx);
	if (cap < 0)
		cap = getenv("PKCS11_FAULT_MAX_SESSIONS") != NULL ?
		    atoi(getenv("PKCS11_FAULT_MAX_SESSIONS")) : 0;
	if (nopen < MAX_TRACKED) {
		open_s[nopen].h = h;
		open_s[nopen].slot = slot;
		open_s[nopen].busy = 0;
		nopen++;
	}
	if (nopen > max_open) {
		max_open = nopen;
		logf_("max-open %d", max_open);
	}
	if (cap > 0 && nopen > cap)
		logf_("VIOLATION %d sessions open, the cap is %d", nopen, cap);
	pthread_mutex_unlock(&mtx);
}

static void
untrack_locked(CK_SESSION_HANDLE h)
{
	for (int i = 0; i < nopen; i++)
		if (open_s[i].h == h) {
			open_s[i] = open_s[--nopen];
			return;
		}
}

static void
untrack_slot_locked(CK_SLOT_ID slot)
{
	for (int i = 0; i < nopen;)
		if (open_s[i].slot == slot)
			open_s[i] = open_s[--nopen];
		else
			i++;
}

/* Called with mtx held. */
static void
close_all_real(void)
{
	CK_SLOT_ID slots[MAX_TRACKED];
	int n = 0;

	for (int i = 0; i < nopen; i++) {
		int seen = 0;

		for (int j = 0; j < n; j++)
			seen |= slots[j] == open_s[i].slot;
		if (!seen)
			slots[n++] = open_s[i].slot;
	}
	for (int j = 0; j < n; j++) {
		real->C_CloseAllSessions(slots[j]);
		untrack_slot_locked(slots[j]);
	}
	logf_("removed: %d slot(s) closed", n);
}

/* Enter and leave a session: two threads inside one at once is what
 * PKCS#11 forbids an application to do. */
static void
enter(CK_SESSION_HANDLE h, const char *fn)
{
	struct tracked *t;

	pthread_mutex_lock(&mtx);
	if ((t = find_locked(h)) != NULL) {
		if (t->busy && !pthread_equal(t->thread, pthread_self()))
			logf_("VIOLATION session %lu used by two threads at "
			    "once (%s)", (unsigned long)h, fn);
		t->busy++;
		t->thread = pthread_self();
	}
	pthread_mutex_unlock(&mtx);
}

static void
leave(CK_SESSION_HANDLE h)
{
	struct tracked *t;

	pthread_mutex_lock(&mtx);
	if ((t = find_locked(h)) != NULL && t->busy > 0)
		t->busy--;
	pthread_mutex_unlock(&mtx);
}

static int
removed(void)
{
	return settings().fault == F_REMOVED;
}

/* Sleep while the setting stays f, at most HANG_MAX_MS. */
static void
hold(const char *fn, enum fault f)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	logf_("inject %s %s", fn, fault_names[f]);
	for (int ms = 0; ms < HANG_MAX_MS && settings().fault == f; ms += 20)
		nanosleep(&ts, NULL);
}

/* The fault for a call of kind `which`, or CKR_OK to go on. */
static CK_RV
inject(const char *fn, int which, int idx, CK_SESSION_HANDLE h)
{
	struct settings st = settings();

	if (st.fault == F_REMOVED) {
		logf_("inject %s removed", fn);
		return CKR_TOKEN_NOT_PRESENT;
	}
	if (st.fault == F_CORRUPT || !hit(st, which, idx))
		return CKR_OK;
	switch (st.fault) {
	case F_DEVICE:
		logf_("inject %s device", fn);
		return CKR_DEVICE_ERROR;
	case F_SESSION:
		logf_("inject %s session", fn);
		if (h != CK_INVALID_HANDLE && real->C_CloseSession(h) == CKR_OK) {
			pthread_mutex_lock(&mtx);
			untrack_locked(h);
			pthread_mutex_unlock(&mtx);
		}
		return CKR_SESSION_HANDLE_INVALID;
	case F_LOGIN:
		logf_("inject %s login", fn);
		if (h != CK_INVALID_HANDLE)
			real->C_Logout(h);
		return CKR_USER_NOT_LOGGED_IN;
	case F_HANG:
		hold(fn, F_HANG);
		return CKR_DEVICE_ERROR;
	case F_STALL:
		hold(fn, F_STALL);
		return CKR_OK;
	case F_REFUSE:
		logf_("inject %s refuse", fn);
		return CKR_ACTION_PROHIBITED;
	case F_RV:
		logf_("inject %s rv 0x%lx", fn, (unsigned long)st.rv);
		return st.rv;
	default:
		return CKR_OK;
	}
}

/* ---- the wrapped functions ---- */

static CK_RV
w_Finalize(CK_VOID_PTR p)
{
	CK_RV rv = real->C_Finalize(p);

	if (rv == CKR_OK) {
		pthread_mutex_lock(&mtx);
		nopen = 0;
		pthread_mutex_unlock(&mtx);
	}
	return rv;
}

static CK_RV
w_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	CK_RV rv = real->C_GetSlotInfo(slot, info);

	if (rv == CKR_OK && removed())
		info->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
	return rv;
}

static CK_RV
w_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	if (removed())
		return CKR_TOKEN_NOT_PRESENT;
	return real->C_GetTokenInfo(slot, info);
}

static CK_RV
w_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR out)
{
	CK_RV rv;

	if ((rv = inject("C_OpenSession", ON_OPEN, 1,
	    CK_INVALID_HANDLE)) == CKR_OK &&
	    (rv = real->C_OpenSession(slot, flags, app, notify, out)) == CKR_OK)
		track_open(slot, *out);
	logf_("open-session 0x%lx", (unsigned long)rv);
	return rv;
}

static CK_RV
w_CloseSession(CK_SESSION_HANDLE h)
{
	CK_RV rv;

	enter(h, "C_CloseSession");
	rv = real->C_CloseSession(h);
	leave(h);
	if (rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID) {
		pthread_mutex_lock(&mtx);
		untrack_locked(h);
		pthread_mutex_unlock(&mtx);
	}
	return rv;
}

static CK_RV
w_CloseAllSessions(CK_SLOT_ID slot)
{
	CK_RV rv = real->C_CloseAllSessions(slot);

	if (rv == CKR_OK) {
		pthread_mutex_lock(&mtx);
		untrack_slot_locked(slot);
		pthread_mutex_unlock(&mtx);
	}
	return rv;
}

static CK_RV
w_Login(CK_SESSION_HANDLE h, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
    CK_ULONG len)
{
	CK_RV rv;

	enter(h, "C_Login");
	if ((rv = inject("C_Login", ON_LOGIN, 2, h)) == CKR_OK)
		rv = real->C_Login(h, who, pin, len);
	leave(h);
	logf_("login 0x%lx", (unsigned long)rv);
	return rv;
}

static CK_RV
w_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
    CK_ULONG_PTR siglen)
{
	CK_RV rv;

	enter(h, "C_Sign");
	/* A size query (sig NULL) is left alone: the fault is the signature. */
	if (sig == NULL || (rv = inject("C_Sign", ON_SIGN, 3, h)) == CKR_OK) {
		rv = real->C_Sign(h, data, len, sig, siglen);
		if (rv == CKR_OK && sig != NULL && *siglen > 0) {
			struct settings st = settings();

			if (st.fault == F_CORRUPT && hit(st, ON_SIGN, 4)) {
				sig[*siglen / 2] ^= 0x5a;
				logf_("inject C_Sign corrupt");
			}
		}
	} else {
		/* PKCS#11: a failed C_Sign ends the operation. */
		CK_BYTE tmp[1024];
		CK_ULONG tl = sizeof(tmp);

		(void)real->C_Sign(h, data, len, tmp, &tl);
	}
	leave(h);
	return rv;
}

static CK_RV
w_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
	CK_RV rv;

	if (removed())
		return CKR_TOKEN_NOT_PRESENT;
	enter(h, "C_DestroyObject");
	if ((rv = inject("C_DestroyObject", ON_DESTROY, 5, h)) == CKR_OK)
		rv = real->C_DestroyObject(h, o);
	leave(h);
	return rv;
}

static CK_RV
w_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_RV rv;

	if (removed())
		return CKR_TOKEN_NOT_PRESENT;
	enter(h, "C_FindObjectsInit");
	if ((rv = inject("C_FindObjectsInit", ON_FIND, 6, h)) == CKR_OK)
		rv = real->C_FindObjectsInit(h, t, n);
	leave(h);
	return rv;
}

/* trace: which object signs, read before the real call (the key's
 * CKA_TOKEN). */
static CK_RV
w_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	CK_BBOOL token = CK_FALSE;
	CK_ATTRIBUTE a = { CKA_TOKEN, &token, sizeof(token) };
	CK_RV rv;

	if (removed())
		return CKR_TOKEN_NOT_PRESENT;
	enter(h, "C_SignInit");
	if (settings().trace)
		logf_("sign-init %s", real->C_GetAttributeValue(h, k, &a, 1) !=
		    CKR_OK ? "unknown" : token ? "token" : "session");
	rv = real->C_SignInit(h, m, k);
	leave(h);
	return rv;
}

static CK_RV
w_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	CK_RV rv;

	if (removed())
		return CKR_TOKEN_NOT_PRESENT;
	enter(h, "C_CopyObject");
	if ((rv = inject("C_CopyObject", ON_COPY, 8, h)) == CKR_OK)
		rv = real->C_CopyObject(h, o, t, n, out);
	logf_("copy 0x%lx", (unsigned long)rv);
	leave(h);
	return rv;
}

/* Every other call that names a session: the concurrency check, and
 * CKR_TOKEN_NOT_PRESENT while the token is out. */
#define SESSION_FN(name, decl, args)					\
static CK_RV								\
w_##name decl								\
{									\
	CK_RV rv;							\
									\
	if (removed())							\
		return CKR_TOKEN_NOT_PRESENT;				\
	enter(h, "C_" #name);						\
	rv = real->C_##name args;					\
	leave(h);							\
	return rv;							\
}

SESSION_FN(GetSessionInfo, (CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR i), (h, i))
SESSION_FN(Logout, (CK_SESSION_HANDLE h), (h))
SESSION_FN(SignUpdate, (CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG l),
    (h, d, l))
SESSION_FN(SignFinal, (CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG_PTR l),
    (h, s, l))
SESSION_FN(FindObjects, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR o,
    CK_ULONG max, CK_ULONG_PTR n), (h, o, max, n))
SESSION_FN(FindObjectsFinal, (CK_SESSION_HANDLE h), (h))
SESSION_FN(GetAttributeValue, (CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
    CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, o, t, n))
SESSION_FN(CreateObject, (CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR o), (h, t, n, o))
SESSION_FN(GenerateRandom, (CK_SESSION_HANDLE h, CK_BYTE_PTR r, CK_ULONG n),
    (h, r, n))

/* fault=crash: the key pair is made, then the process dies before the
 * application hears of it, if its private key's label starts with the
 * label= prefix. Any other fault goes as for other calls. */
static CK_RV
w_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pt, CK_ULONG pn, CK_ATTRIBUTE_PTR vt, CK_ULONG vn,
    CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	struct settings st = settings();
	size_t plen = strlen(st.label);
	int match = plen == 0;
	CK_RV rv;

	if (removed())
		return CKR_TOKEN_NOT_PRESENT;
	for (CK_ULONG i = 0; i < vn && !match; i++)
		if (vt[i].type == CKA_LABEL && vt[i].pValue != NULL &&
		    vt[i].ulValueLen >= plen &&
		    memcmp(vt[i].pValue, st.label, plen) == 0)
			match = 1;
	enter(h, "C_GenerateKeyPair");
	if (!match || st.fault == F_CRASH ||
	    (rv = inject("C_GenerateKeyPair", ON_GENERATE, 7, h)) == CKR_OK)
		rv = real->C_GenerateKeyPair(h, m, pt, pn, vt, vn, pub, priv);
	if (rv == CKR_OK && match && st.fault == F_CRASH &&
	    (st.on & ON_GENERATE)) {
		logf_("inject C_GenerateKeyPair crash");
		kill(getpid(), SIGKILL);
	}
	leave(h);
	return rv;
}

static CK_RV w_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

static CK_RV
load(void)
{
	const char *path = getenv("PKCS11_FAULT_MODULE");
	CK_RV (*getlist)(CK_FUNCTION_LIST_PTR_PTR);

	if (real != NULL)
		return CKR_OK;
	if (path == NULL)
		path = DEFAULT_MODULE;
	if ((dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL)
		return CKR_GENERAL_ERROR;
	*(void **)&getlist = dlsym(dl, "C_GetFunctionList");
	if (getlist == NULL || getlist(&real) != CKR_OK || real == NULL)
		return CKR_GENERAL_ERROR;
	wrapped = *real;
	wrapped.C_GetFunctionList = w_GetFunctionList;
	wrapped.C_Finalize = w_Finalize;
	wrapped.C_GetSlotInfo = w_GetSlotInfo;
	wrapped.C_GetTokenInfo = w_GetTokenInfo;
	wrapped.C_OpenSession = w_OpenSession;
	wrapped.C_CloseSession = w_CloseSession;
	wrapped.C_CloseAllSessions = w_CloseAllSessions;
	wrapped.C_Login = w_Login;
	wrapped.C_Sign = w_Sign;
	wrapped.C_GetSessionInfo = w_GetSessionInfo;
	wrapped.C_Logout = w_Logout;
	wrapped.C_SignInit = w_SignInit;
	wrapped.C_SignUpdate = w_SignUpdate;
	wrapped.C_SignFinal = w_SignFinal;
	wrapped.C_FindObjectsInit = w_FindObjectsInit;
	wrapped.C_FindObjects = w_FindObjects;
	wrapped.C_FindObjectsFinal = w_FindObjectsFinal;
	wrapped.C_GetAttributeValue = w_GetAttributeValue;
	wrapped.C_GenerateKeyPair = w_GenerateKeyPair;
	wrapped.C_CreateObject = w_CreateObject;
	wrapped.C_DestroyObject = w_DestroyObject;
	wrapped.C_CopyObject = w_CopyObject;
	wrapped.C_GenerateRandom = w_GenerateRandom;
	return CKR_OK;
}

static CK_RV
w_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	CK_RV rv;

	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&mtx);
	rv = load();
	pthread_mutex_unlock(&mtx);
	if (rv != CKR_OK)
		return rv;
	*out = &wrapped;
	return CKR_OK;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
	return w_GetFunctionList(out);
}
