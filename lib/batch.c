/* batch.c: factory batch signing.
 *
 *   load the list -> check every CSR (parallel) -> name the batch (SHA-256
 *   of its input) -> sign the good ones (parallel, through a batch_signer)
 *   -> DEVICE.crt and DEVICE.chain.pem as they come -> sync -> results.csv
 *   (atomic) -> the batch's record
 *
 * Crash safety comes from the signer: local mode reserves every serial
 * durably before the HSM signs and releases a certificate only once its
 * record committed (lib/issue.c), and returns the recorded certificate of
 * a CSR instead of signing it again. A run killed at any point is finished
 * by running it again: files are rewritten from what the store holds, and
 * results.csv only ever appears whole.
 *
 * Runs at once (two stations through hsmcad, a station and a local run)
 * are kept from signing one CSR twice by the store: a batch's serial is
 * reserved only while its CSR has no certificate and no other batch
 * reservation pending, in the reservation's own transaction. The one
 * that loses gets the other's certificate, or fails to be run again.
 * The batch lock (batch_lock) says when a reservation pending is one a
 * dead run left behind, to be marked failed. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "hsmca/audit.h"
#include "hsmca/batch.h"
#include "hsmca/ca.h"
#include "hsmca/clock.h"
#include "hsmca/profile.h"
#include "hsmca/store.h"

#define BATCH_MANIFEST_MAX	(64 * 1024 * 1024)
#define BATCH_LOCK		".hsmca-batch.lock"
#define BATCH_RESULTS		"results.csv"
/* Chunks per worker: a chunk (at most BATCH_CHUNK_MAX items, signed
 * at once when the signer can: local mode reserves their serials in one
 * commit, records them in one) is smaller for small batches, so that
 * every worker gets some. */
#define BATCH_CHUNKS_PER_JOB	8

static const char *const status_names[BATCH_STATUS_MAX] = {
	[BATCH_PENDING] = "skipped",
	[BATCH_ISSUED] = "issued",
	[BATCH_EXISTING] = "existing",
	[BATCH_REFUSED] = "refused",
	[BATCH_FAILED] = "failed",
};

const char *
batch_status_name(enum batch_status s)
{
	if ((unsigned)s >= BATCH_STATUS_MAX)
		return "unknown";
	return status_names[s];
}

int
batch_is_refusal(int code)
{
	/* Not HSMCA_ERR_IO: a station that lost the appliance's answer
	 * cannot tell whether it signed. */
	switch (code) {
	case HSMCA_ERR_CSR_PARSE:
	case HSMCA_ERR_CSR_SIGNATURE:
	case HSMCA_ERR_KEY_POLICY:
	case HSMCA_ERR_PROFILE:
	case HSMCA_ERR_POLICY:
	case HSMCA_ERR_LINT:
	case HSMCA_ERR_EXISTS:
		return 1;
	default:
		return 0;
	}
}

static double
batch_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the list of devices ---- */

/* A device id names files in the output folder. */
static int
device_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > BATCH_DEVICE_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' &&
		    *s != '-' && *s != '@' && *s != ':')
			return 0;
	return 1;
}

static int
batch_add(struct batch *b, size_t *cap, const char *device, const char *path,
    const struct profile *p, const char *where, struct hsmca_err *e)
{
	struct batch_item *nv, *it;

	if (!device_id_ok(device))
		return err_set(e, HSMCA_ERR_ARG, "%s: device id \"%.*s\" cannot "
		    "name a file (letters, digits and . _ - @ : only, at most "
		    "%d, not starting with . or -)", where, 64, device,
		    BATCH_DEVICE_MAX);
	if (b->nitems == *cap) {
		*cap = *cap == 0 ? 256 : *cap * 2;
		if ((nv = reallocarray(b->items, *cap, sizeof(*nv))) == NULL)
			return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		b->items = nv;
	}
	it = &b->items[b->nitems];
	memset(it, 0, sizeof(*it));
	if ((it->device = strdup(device)) == NULL ||
	    (it->path = strdup(path)) == NULL) {
		free(it->device);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	it->profile = p;
	b->nitems++;
	return 0;
}

static int
has_csr_suffix(const char *name, size_t *stem)
{
	static const char *const sfx[] = { ".csr", ".pem", ".der", ".req" };
	size_t n = strlen(name), k;

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		k = strlen(sfx[i]);
		if (n > k && strcasecmp(name + n - k, sfx[i]) == 0) {
			*stem = n - k;
			return 1;
		}
	}
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
load_dir(struct batch *b, const struct batch_opts *o, struct hsmca_err *e)
{
	DIR *d = NULL;
	struct dirent *de;
	char **names = NULL, **nv, path[PATH_MAX], dev[BATCH_DEVICE_MAX + 2];
	size_t n = 0, cap = 0, icap = 0, stem;
	int ret = HSMCA_ERR_IO;

	if ((d = opendir(o->in)) == NULL) {
		err_set(e, ret, "%s: %s", o->in, strerror(errno));
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !has_csr_suffix(de->d_name, &stem))
			continue;
		if (n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			if ((nv = reallocarray(names, cap, sizeof(*nv))) ==
			    NULL) {
				ret = err_set(e, HSMCA_ERR_ALLOC,
				    "out of memory");
				goto out;
			}
			names = nv;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
		n++;
	}
	if (errno != 0) {
		err_set(e, ret, "%s: %s", o->in, strerror(errno));
		goto out;
	}
	/* In name order: the same folder is the same batch. */
	if (n > 0)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		(void)has_csr_suffix(names[i], &stem);
		if (stem > BATCH_DEVICE_MAX)
			stem = BATCH_DEVICE_MAX + 1;
		snprintf(dev, sizeof(dev), "%.*s", (int)stem, names[i]);
		if (snprintf(path, sizeof(path), "%s/%s", o->in, names[i]) >=
		    (int)sizeof(path)) {
			ret = err_set(e, HSMCA_ERR_ARG, "%s/%s: path too long",
			    o->in, names[i]);
			goto out;
		}
		if ((ret = batch_add(b, &icap, dev, path, o->profile, path,
		    e)) != 0)
			goto out;
	}
	ret = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (d != NULL)
		closedir(d);
	return ret;
}

/* Trim spaces around s in place. */
static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* Split a CSV line in place into at most three fields, quoted as RFC
 * 4180 says (a field in double quotes may hold commas, "" is a quote;
 * one line only): 0 and *nf, or -1 and *why. */
static int
csv_split(char *line, char *f[3], int *nf, const char **why)
{
	char *p = line, *q;
	int n = 0;

	for (;;) {
		if (n == 3) {
			*why = "more than three fields (device,csr,profile)";
			return -1;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '"') {
			f[n++] = p;
			p += strcspn(p, ",");
		} else {
			f[n++] = q = ++p;
			for (;;) {
				if (*p == '\0') {
					*why = "a quoted field does not end on "
					    "its line";
					return -1;
				}
				if (*p == '"' && p[1] != '"')
					break;
				if (*p == '"')
					p++;
				*q++ = *p++;
			}
			*q = '\0';
			p += 1 + strspn(p + 1, " \t");
			if (*p != ',' && *p != '\0') {
				*why = "text after a quoted field";
				return -1;
			}
		}
		if (*p == '\0')
			break;
		*p++ = '\0';
	}
	*nf = n;
	return 0;
}

/* A CSV line that names the columns: device,csr[,profile]. */
static int
csv_header(char *const f[3], int nf)
{
	return nf >= 2 && (strcasecmp(f[0], "device") == 0 ||
	    strcasecmp(f[0], "device_id") == 0) &&
	    strcasecmp(f[1], "csr") == 0 &&
	    (nf == 2 || strcasecmp(f[2], "profile") == 0);
}

/* A JSON Lines object: its members device, csr and profile (NULL if
 * absent), each a string; nothing else. */
static int
jsonl_entry(json_t *j, const char **dev, const char **csr,
    const char **prof, const char *where, struct hsmca_err *e)
{
	const char *k;
	json_t *v;

	*dev = *csr = *prof = NULL;
	json_object_foreach(j, k, v) {
		if (strcmp(k, "device") != 0 && strcmp(k, "csr") != 0 &&
		    strcmp(k, "profile") != 0)
			return err_set(e, HSMCA_ERR_ARG, "%s: unknown member "
			    "\"%.32s\" (device, csr and profile only)", where,
			    k);
		if (!json_is_string(v) ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return err_set(e, HSMCA_ERR_ARG, "%s: \"%s\" is not a "
			    "string", where, k);
	}
	*dev = json_string_value(json_object_get(j, "device"));
	*csr = json_string_value(json_object_get(j, "csr"));
	*prof = json_string_value(json_object_get(j, "profile"));
	return 0;
}

/* One manifest line: device, CSR path (relative to the manifest's
 * folder) and profile name (NULL: the default). */
static int
manifest_entry(struct batch *b, size_t *icap, const struct batch_opts *o,
    const char *base, const char *device, const char *csr,
    const char *profile, const char *where, struct hsmca_err *e)
{
	const struct profile *p = o->profile;
	char path[PATH_MAX];

	if (device == NULL || *device == '\0' || csr == NULL || *csr == '\0')
		return err_set(e, HSMCA_ERR_ARG, "%s: a device id and a CSR "
		    "path are needed", where);
	if (profile != NULL && *profile != '\0' &&
	    (p = config_profile(o->cfg, profile)) == NULL)
		return err_set(e, HSMCA_ERR_PROFILE, "%s: unknown profile "
		    "'%.64s'", where, profile);
	if (snprintf(path, sizeof(path), "%s%s", csr[0] == '/' ? "" : base,
	    csr) >= (int)sizeof(path))
		return err_set(e, HSMCA_ERR_ARG, "%s: path too long", where);
	return batch_add(b, icap, device, path, p, where, e);
}

static int
load_manifest(struct batch *b, const struct batch_opts *o,
    struct hsmca_err *e)
{
	unsigned char *buf = NULL;
	char *line, *next, base[PATH_MAX], where[PATH_MAX + 32];
	const char *slash, *why;
	size_t len = 0, icap = 0;
	json_t *j = NULL;
	json_error_t je;
	int lineno = 0, jsonl = -1, ret;

	if ((ret = util_read_file(o->in, BATCH_MANIFEST_MAX, &buf, &len,
	    e)) != 0)
		goto out;
	slash = strrchr(o->in, '/');
	snprintf(base, sizeof(base), "%.*s", slash != NULL ?
	    (int)(slash - o->in + 1) : 0, o->in);
	if (memchr(buf, '\0', len) != NULL) {
		ret = err_set(e, HSMCA_ERR_ARG, "%s: not a text manifest",
		    o->in);
		goto out;
	}
	line = (char *)buf;
	/* A UTF-8 byte order mark, as spreadsheets write it. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		line += 3;
	for (; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", o->in, lineno);
		line = trim(line);
		if (*line == '\0' || *line == '#')
			continue;
		/* The first line decides: JSON Lines or CSV. */
		if (jsonl == -1)
			jsonl = *line == '{';
		if (jsonl) {
			const char *dev, *csr, *prof;

			json_decref(j);
			if ((j = json_loads(line, JSON_REJECT_DUPLICATES,
			    &je)) == NULL || !json_is_object(j)) {
				ret = err_set(e, HSMCA_ERR_ARG, "%s: not a JSON "
				    "object%s%s", where, j == NULL ? ": " : "",
				    j == NULL ? je.text : "");
				goto out;
			}
			if ((ret = jsonl_entry(j, &dev, &csr, &prof, where,
			    e)) != 0 || (ret = manifest_entry(b, &icap, o,
			    base, dev, csr, prof, where, e)) != 0)
				goto out;
			continue;
		}
		{
			char *f[3] = { NULL, NULL, NULL };
			int nf = 0;

			if (csv_split(line, f, &nf, &why) != 0) {
				ret = err_set(e, HSMCA_ERR_ARG, "%s: %s", where,
				    why);
				goto out;
			}
			for (int i = 0; i < nf; i++)
				f[i] = trim(f[i]);
			/* Only a line of exactly the column names: a device
			 * may be called "device". */
			if (b->nitems == 0 && csv_header(f, nf))
				continue;
			if ((ret = manifest_entry(b, &icap, o, base, f[0], f[1],
			    f[2], where, e)) != 0)
				goto out;
		}
	}
	ret = 0;
out:
	json_decref(j);
	free(buf);
	return ret;
}

static int
device_cmp(const void *a, const void *b)
{
	const struct batch_item *x = *(const struct batch_item *const *)a;
	const struct batch_item *y = *(const struct batch_item *const *)b;

	return strcmp(x->device, y->device);
}

int
batch_load(struct batch **out, const struct batch_opts *o,
    struct hsmca_err *e)
{
	struct batch *b;
	struct batch_item **v = NULL;
	struct stat sb, ob;
	int ret;

	*out = NULL;
	if (o->in == NULL || o->profile == NULL)
		return err_set(e, HSMCA_ERR_ARG, "batch: no input or profile");
	if (stat(o->in, &sb) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: %s", o->in,
		    strerror(errno));
	/* DEVICE.chain.pem in the input folder would be read as a CSR by
	 * the next run. */
	if (S_ISDIR(sb.st_mode) && o->out != NULL && stat(o->out, &ob) == 0 &&
	    ob.st_dev == sb.st_dev && ob.st_ino == sb.st_ino)
		return err_set(e, HSMCA_ERR_ARG, "--out %s is the --in folder: "
		    "the next run would read its DEVICE.chain.pem files as "
		    "CSRs; give another output folder", o->out);
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	if (S_ISDIR(sb.st_mode))
		ret = load_dir(b, o, e);
	else
		ret = load_manifest(b, o, e);
	if (ret != 0)
		goto out;
	if (b->nitems == 0) {
		ret = err_set(e, HSMCA_ERR_ARG, "%s: no CSRs (a folder of "
		    "*.csr, *.pem, *.der or *.req, or a manifest)", o->in);
		goto out;
	}
	/* Each device once: its files would overwrite each other. */
	if ((v = calloc(b->nitems, sizeof(*v))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < b->nitems; i++)
		v[i] = &b->items[i];
	qsort(v, b->nitems, sizeof(*v), device_cmp);
	for (size_t i = 1; i < b->nitems; i++)
		if (strcmp(v[i - 1]->device, v[i]->device) == 0) {
			ret = err_set(e, HSMCA_ERR_ARG, "%s: device %s is listed "
			    "twice", o->in, v[i]->device);
			goto out;
		}
	b->stats.items = b->nitems;
	*out = b;
	b = NULL;
	ret = 0;
out:
	free(v);
	batch_free(b);
	return ret;
}

void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->nitems; i++) {
		free(b->items[i].device);
		free(b->items[i].path);
		csr_free(b->items[i].csr);
		free(b->items[i].reason);
		free(b->items[i].cert_pem);
		free(b->items[i].chain_pem);
	}
	free(b->items);
	free(b->chain_pem);
	free(b);
}

/* ---- running it ---- */

enum run_phase { PHASE_CHECK, PHASE_SIGN, PHASE_STOP };

struct run {
	struct batch		*b;
	const struct batch_signer *sg;
	const struct batch_opts	*o;
	void			**workers;
	int			 dirfd;		/* the output folder */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cond;		/* phase changes, threads done */
	enum run_phase		 phase;
	size_t			 next;		/* next item to take */
	int			 busy;		/* threads in the current phase */
	int			 stop;		/* fail-fast: take no more */
	int			 fatal;		/* first error that is not an item's */
	struct hsmca_err	 fatal_err;
	double			 t0, t_sign;
	/* Signed items whose files the calling thread writes: one writer,
	 * so the workers never queue on the folder's lock. */
	size_t			*wq;
	size_t			 wq_head, wq_tail;
	size_t			 chunk;		/* items a worker signs at once */
	/* Write-back started while signing goes on: the final syncfs
	 * finds only the last files dirty (flusher_main). */
	pthread_t		 flusher;
	pthread_cond_t		 flush_cond;
	int			 flusher_on;
	int			 flush_req, flush_quit, flush_errno;
	size_t			 written, flush_at;
};

static void
item_fail(struct run *r, struct batch_item *it, int code, const char *msg)
{
	free(it->reason);
	it->reason = strdup(msg != NULL && *msg != '\0' ? msg :
	    hsmca_strerror(code));
	it->status = batch_is_refusal(code) ? BATCH_REFUSED : BATCH_FAILED;
}

/* Read, hash, parse and check one CSR (a worker, no lock held). */
static void
check_item(struct run *r, void *w, struct batch_item *it)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	struct hsmca_err e;
	int ret, unreadable = 0;

	err_clear(&e);
	if ((ret = util_read_file(it->path, CSR_MAX_SIZE, &buf, &len,
	    &e)) != 0) {
		/* Refused, as a CSR that does not parse: running the batch
		 * again will not make the file readable. */
		unreadable = ret != HSMCA_ERR_ALLOC;
		goto out;
	}
	SHA256(buf, len, it->file_sha256);
	/* A signer that checks every CSR when it signs (the appliance, for
	 * a station) checks its signature too: the station leaves it to it,
	 * and asks it first with --fail-fast (sg->check, below). */
	if ((ret = (r->sg->sign_checks ? csr_parse_unverified :
	    csr_parse)(buf, len, &it->csr, &e)) != 0 ||
	    (ret = profile_check_csr(it->profile, it->csr, &e)) != 0)
		goto out;
	/* A signer that checks again when it signs is asked only when a
	 * refusal must stop the batch before anything is signed. */
	if (r->sg->check != NULL && (!r->sg->sign_checks ||
	    r->o->fail_fast) && (ret = r->sg->check(w, it, r->o->fail_fast,
	    &e)) != 0)
		goto out;
out:
	if (ret != 0) {
		csr_free(it->csr);
		it->csr = NULL;
		item_fail(r, it, ret, e.msg);
		if (unreadable)
			it->status = BATCH_REFUSED;
	}
	free(buf);
}

/* Write a then b to fd: one system call when the kernel takes both. */
static int
write_both(int fd, const char *a, size_t alen, const char *b, size_t blen)
{
	struct iovec iov[2];
	size_t i = 0;
	ssize_t n;

	iov[0].iov_base = (void *)(uintptr_t)a;
	iov[0].iov_len = alen;
	iov[1].iov_base = (void *)(uintptr_t)b;
	iov[1].iov_len = blen;
	for (;;) {
		while (i < 2 && iov[i].iov_len == 0)
			i++;
		if (i == 2)
			return 0;
		if ((n = writev(fd, &iov[i], (int)(2 - i))) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (; i < 2 && (size_t)n >= iov[i].iov_len; i++)
			n -= (ssize_t)iov[i].iov_len;
		if (i < 2) {
			iov[i].iov_base = (char *)iov[i].iov_base + n;
			iov[i].iov_len -= (size_t)n;
		}
	}
}

/* 1 if the file fd holds exactly a then b, 0 if it is empty, -1 if it
 * holds something else. */
static int
same_content(int fd, const char *a, size_t alen, const char *b, size_t blen)
{
	struct stat sb;
	char buf[8192];
	size_t n = alen + blen;
	ssize_t got;

	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode))
		return -1;
	if (sb.st_size == 0)
		return 0;
	if ((uintmax_t)sb.st_size != (uintmax_t)n || n > sizeof(buf))
		return -1;
	got = pread(fd, buf, n, 0);
	return got == (ssize_t)n && memcmp(buf, a, alen) == 0 &&
	    memcmp(buf + alen, b, blen) == 0 ? 1 : -1;
}

/* Write a then b to name in the output folder, in place: no temporary
 * and rename, which doubled the folder's work per file. A file that
 * already says exactly this (a re-run) is left alone. A crash may leave
 * a file half written, but never with a results.csv that lists it:
 * results.csv is removed before the first file is touched and written
 * again only after every file is synced (batch_run). */
static int
write_out(struct run *r, const char *name, const char *a, size_t alen,
    const char *b, size_t blen, struct hsmca_err *e)
{
	int fd, same, ret = HSMCA_ERR_IO;

	if ((fd = openat(r->dirfd, name, O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0644)) == -1)
		return err_set(e, ret, "%s/%s: %s", r->o->out, name,
		    strerror(errno));
	/* Truncate only what holds something: ext4 flushes a file
	 * truncated to zero when it is closed. */
	if ((same = same_content(fd, a, alen, b, blen)) == 1) {
		close(fd);
		return 0;
	}
	if ((same == -1 && ftruncate(fd, 0) == -1) ||
	    write_both(fd, a, alen, b, blen) == -1) {
		err_set(e, ret, "%s/%s: %s", r->o->out, name, strerror(errno));
		close(fd);
		return ret;
	}
	if (close(fd) == -1)
		return err_set(e, ret, "%s/%s: %s", r->o->out, name,
		    strerror(errno));
	return 0;
}

/* A worker's chunk of items to sign and their results. */
struct chunk {
	struct batch_item	**items;
	struct batch_cert	*certs;
	int			*rets;
	struct hsmca_err	*errs;
	size_t			 n;
};

/* Sign the chunk's checked CSRs (a worker, no lock held): all at once
 * when the signer can, one by one otherwise. rets[i] 0: signed, its
 * certificate in items[i]->cert_pem for the writer. */
static void
sign_items(struct run *r, void *w, struct chunk *ck)
{
	struct batch_item *it;
	struct batch_cert *c;
	size_t i;

	for (i = 0; i < ck->n; i++) {
		memset(&ck->certs[i], 0, sizeof(ck->certs[i]));
		err_clear(&ck->errs[i]);
	}
	if (ck->n > 1 && r->sg->sign_chunk != NULL)
		r->sg->sign_chunk(w, ck->items, ck->n, ck->certs, ck->rets,
		    ck->errs);
	else
		for (i = 0; i < ck->n; i++)
			ck->rets[i] = r->sg->sign(w, ck->items[i],
			    &ck->certs[i], &ck->errs[i]);
	for (i = 0; i < ck->n; i++) {
		it = ck->items[i];
		c = &ck->certs[i];
		if (ck->rets[i] != 0) {
			item_fail(r, it, ck->rets[i], ck->errs[i].msg);
			if (it->status == BATCH_REFUSED &&
			    r->sg->refused != NULL)
				r->sg->refused(w, it);
			batch_cert_free_fields(c);
			continue;
		}
		/* The certificate is recorded: from here on a failure to
		 * write it out is the batch's, and a re-run writes it. */
		memcpy(it->serial, c->serial, sizeof(it->serial));
		memcpy(it->sha256, c->sha256, sizeof(it->sha256));
		it->cert_pem = c->pem;
		it->chain_pem = c->chain;
		it->status = c->status;
	}
}

/* Write a signed item's DEVICE.crt and DEVICE.chain.pem (the calling
 * thread, no lock held): the certificate, then the CA certificates above
 * it, the batch's unless the signer named others. */
static void
write_item(struct run *r, struct batch_item *it)
{
	struct hsmca_err e;
	char name[BATCH_DEVICE_MAX + 16];
	const char *chain;
	size_t len = strlen(it->cert_pem);
	int ret;

	err_clear(&e);
	snprintf(name, sizeof(name), "%s.crt", it->device);
	if ((ret = write_out(r, name, it->cert_pem, len, "", 0, &e)) == 0) {
		snprintf(name, sizeof(name), "%s.chain.pem", it->device);
		chain = it->chain_pem != NULL ? it->chain_pem :
		    r->b->chain_pem;
		ret = write_out(r, name, it->cert_pem, len, chain,
		    strlen(chain), &e);
	}
	if (ret != 0) {
		item_fail(r, it, ret, e.msg);
		it->status = BATCH_FAILED;
	}
	free(it->cert_pem);
	free(it->chain_pem);
	it->cert_pem = NULL;
	it->chain_pem = NULL;
}

static void
count_item(struct run *r, const struct batch_item *it)
{
	struct batch_stats *s = &r->b->stats;

	switch (it->status) {
	case BATCH_ISSUED:
		s->issued++;
		break;
	case BATCH_EXISTING:
		s->existing++;
		break;
	case BATCH_REFUSED:
		s->refused++;
		break;
	case BATCH_FAILED:
		s->failed++;
		break;
	default:
		break;
	}
	if ((it->status == BATCH_REFUSED || it->status == BATCH_FAILED) &&
	    r->o->item_done != NULL)
		r->o->item_done(r->o->arg, it);
	if (it->status == BATCH_REFUSED && r->o->fail_fast)
		r->stop = 1;
}

struct worker_arg {
	struct run	*r;
	void		*w;
	struct chunk	 ck;
};

static void *
batch_worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct run *r = wa->r;
	struct chunk *ck = &wa->ck;
	struct batch_item *it;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		/* Wait for work of the current phase. */
		while (r->phase != PHASE_STOP && (r->stop ||
		    r->next >= r->b->nitems))
			pthread_cond_wait(&r->cond, &r->mu);
		if (r->phase == PHASE_STOP)
			break;
		if (r->phase == PHASE_CHECK) {
			it = &r->b->items[r->next++];
			r->busy++;
			pthread_mutex_unlock(&r->mu);
			check_item(r, wa->w, it);
			pthread_mutex_lock(&r->mu);
			r->b->stats.checked++;
			if (it->status == BATCH_REFUSED ||
			    it->status == BATCH_FAILED)
				count_item(r, it);
			/* Only the waiting caller has anything to do with
			 * this: when the phase ends or stops. A wake-up per
			 * CSR was 10,000 context switches a run. */
			if (--r->busy == 0 || r->stop)
				pthread_cond_broadcast(&r->cond);
			continue;
		}
		/* The next chunk of items still to sign. */
		for (ck->n = 0; ck->n < r->chunk && r->next < r->b->nitems;) {
			it = &r->b->items[r->next++];
			if (it->status == BATCH_PENDING)
				ck->items[ck->n++] = it;
		}
		if (ck->n == 0)
			continue;
		r->busy++;
		pthread_mutex_unlock(&r->mu);
		sign_items(r, wa->w, ck);
		pthread_mutex_lock(&r->mu);
		for (size_t i = 0; i < ck->n; i++) {
			it = ck->items[i];
			if (ck->rets[i] == 0)
				r->wq[r->wq_tail++] = (size_t)(it -
				    r->b->items);
			else
				count_item(r, it);
		}
		r->busy--;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Files between two write-backs started early: about eight per run, and
 * none for a run of a few dozen. */
#define BATCH_FLUSH_MIN		64

static size_t
flush_every(const struct run *r)
{
	size_t n = r->b->nitems / 8;

	return n < BATCH_FLUSH_MIN ? BATCH_FLUSH_MIN : n;
}

/*
 * The files written so far go to disk while the workers sign the rest:
 * syncfs at the end of a run otherwise waits for all of them at once,
 * with nothing left to compute beside it (0.2-0.3 s of a 10,000-CSR
 * run). The final syncfs in write_results stays what makes results.csv
 * true; an error seen here is kept for it, since the error a syncfs
 * reports is reported once per open folder.
 */
static void *
flusher_main(void *arg)
{
	struct run *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->flush_req && !r->flush_quit)
			pthread_cond_wait(&r->flush_cond, &r->mu);
		if (!r->flush_req)
			break;
		r->flush_req = 0;
		pthread_mutex_unlock(&r->mu);
#ifdef __linux__
		if (syncfs(r->dirfd) == -1) {
			pthread_mutex_lock(&r->mu);
			if (r->flush_errno == 0)
				r->flush_errno = errno;
			continue;
		}
#endif
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* The flusher finishes the write-back it started, if any, and ends. */
static void
flusher_stop(struct run *r)
{
	if (!r->flusher_on)
		return;
	pthread_mutex_lock(&r->mu);
	r->flush_quit = 1;
	pthread_cond_signal(&r->flush_cond);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->flusher, NULL);
	r->flusher_on = 0;
}

/* Wait, with r->mu held, until the current phase has no work left, no
 * thread is busy with it and every signed item's files are written
 * (here, by the calling thread); report progress every tick. */
static void
wait_phase(struct run *r)
{
	struct batch_stats snap;
	struct batch_item *it;
	struct timespec ts;
	double now, last = batch_clock();
	int tick = r->o->tick_ms > 0 ? r->o->tick_ms : 1000;

	while (r->busy > 0 || r->wq_head != r->wq_tail ||
	    (!r->stop && r->next < r->b->nitems)) {
		if (r->wq_head != r->wq_tail) {
			it = &r->b->items[r->wq[r->wq_head++]];
			pthread_mutex_unlock(&r->mu);
			write_item(r, it);
			pthread_mutex_lock(&r->mu);
			count_item(r, it);
			if (r->flusher_on && ++r->written >= r->flush_at) {
				r->flush_at += flush_every(r);
				r->flush_req = 1;
				pthread_cond_signal(&r->flush_cond);
			}
		} else {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)tick * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			(void)pthread_cond_timedwait(&r->cond, &r->mu, &ts);
		}
		if (r->o->progress == NULL ||
		    (now = batch_clock()) - last < tick / 1000.0)
			continue;
		last = now;
		snap = r->b->stats;
		snap.elapsed = now - r->t0;
		snap.sign_elapsed = r->t_sign > 0 ? now - r->t_sign : 0;
		pthread_mutex_unlock(&r->mu);
		r->o->progress(r->o->arg, &snap);
		pthread_mutex_lock(&r->mu);
	}
}

static int
fp_cmp(const void *a, const void *b)
{
	const struct batch_item *x = *(const struct batch_item *const *)a;
	const struct batch_item *y = *(const struct batch_item *const *)b;
	int c;

	if (x->csr == NULL || y->csr == NULL)
		return (x->csr == NULL) - (y->csr == NULL);
	if ((c = memcmp(x->csr->fingerprint, y->csr->fingerprint,
	    sizeof(x->csr->fingerprint))) != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* One CSR, one certificate: a CSR listed for two devices is signed for
 * the first only. */
static int
refuse_duplicates(struct run *r, struct hsmca_err *e)
{
	struct batch *b = r->b;
	struct batch_item **v, *it;
	char msg[256];

	if ((v = calloc(b->nitems, sizeof(*v))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	for (size_t i = 0; i < b->nitems; i++)
		v[i] = &b->items[i];
	qsort(v, b->nitems, sizeof(*v), fp_cmp);
	for (size_t i = 1; i < b->nitems; i++) {
		it = v[i];
		if (it->csr == NULL || v[i - 1]->csr == NULL ||
		    memcmp(it->csr->fingerprint, v[i - 1]->csr->fingerprint,
		    sizeof(it->csr->fingerprint)) != 0)
			continue;
		snprintf(msg, sizeof(msg), "the same CSR as device %s: one "
		    "certificate per CSR", v[i - 1]->device);
		csr_free(it->csr);
		it->csr = NULL;
		item_fail(r, it, HSMCA_ERR_EXISTS, msg);
		v[i] = v[i - 1];	/* later duplicates name the first */
		count_item(r, it);
	}
	free(v);
	return 0;
}

/* The batch's name: SHA-256 over each device, the SHA-256 of its CSR
 * file and its profile, in input order. */
static int
batch_hash(struct batch *b, struct hsmca_err *e)
{
	EVP_MD_CTX *ctx;
	unsigned char md[32];
	char hex[65];
	unsigned int mdlen = 0;
	int ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	for (size_t i = 0; ok && i < b->nitems; i++) {
		util_hex(b->items[i].file_sha256, 32, hex);
		ok = EVP_DigestUpdate(ctx, b->items[i].device,
		    strlen(b->items[i].device) + 1) &&
		    EVP_DigestUpdate(ctx, hex, sizeof(hex)) &&
		    EVP_DigestUpdate(ctx, b->items[i].profile->name,
		    strlen(b->items[i].profile->name)) &&
		    EVP_DigestUpdate(ctx, "\n", 1);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return err_set(e, HSMCA_ERR_INTERNAL, "batch: SHA-256 failed");
	util_hex(md, 32, b->sha256);
	return 0;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static int
csv_field(FILE *fp, const char *s)
{
	if (s == NULL)
		s = "";
	if (strpbrk(s, ",\"\r\n") == NULL)
		return fputs(s, fp);
	fputc('"', fp);
	for (; *s != '\0'; s++) {
		if (*s == '"')
			fputc('"', fp);
		fputc(*s == '\n' || *s == '\r' ? ' ' : *s, fp);
	}
	return fputc('"', fp);
}

/* Every certificate file on disk, then results.csv in one piece. */
static int
write_results(struct run *r, struct hsmca_err *e)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len = 0;
	FILE *fp;
	int ret;

#ifdef __linux__
	if (syncfs(r->dirfd) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: syncfs: %s", r->o->out,
		    strerror(errno));
	if (r->flush_errno != 0)
		return err_set(e, HSMCA_ERR_IO, "%s: syncfs: %s", r->o->out,
		    strerror(r->flush_errno));
#else
	sync();
#endif
	if ((fp = open_memstream(&buf, &len)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	fputs("device,serial,sha256,status,reason\n", fp);
	for (size_t i = 0; i < r->b->nitems; i++) {
		const struct batch_item *it = &r->b->items[i];

		fprintf(fp, "%s,%s,%s,%s,", it->device, it->serial, it->sha256,
		    batch_status_name(it->status));
		csv_field(fp, it->reason);
		fputc('\n', fp);
	}
	if (fclose(fp) != 0) {
		free(buf);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	if (snprintf(path, sizeof(path), "%s/%s", r->o->out, BATCH_RESULTS) >=
	    (int)sizeof(path))
		ret = err_set(e, HSMCA_ERR_ARG, "%s: path too long", r->o->out);
	else
		ret = util_write_file_atomic(path, buf, len, 0644, e);
	free(buf);
	return ret;
}

/* results.csv says that every file it lists is whole and on disk: it
 * goes, durably, before this run writes a file in place, and comes back
 * once they are synced. */
static int
drop_results(struct run *r, struct hsmca_err *e)
{
	if (unlinkat(r->dirfd, BATCH_RESULTS, 0) == -1)
		return errno == ENOENT ? 0 : err_set(e, HSMCA_ERR_IO,
		    "%s/%s: %s", r->o->out, BATCH_RESULTS, strerror(errno));
	if (fsync(r->dirfd) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: fsync: %s", r->o->out,
		    strerror(errno));
	return 0;
}

/* The output folder, created if needed and locked for this run. */
static int
open_out(const char *out, int *dirfd, int *lockfd, struct hsmca_err *e)
{
	*dirfd = *lockfd = -1;
	if (mkdir(out, 0755) == -1 && errno != EEXIST)
		return err_set(e, HSMCA_ERR_IO, "%s: %s", out, strerror(errno));
	if ((*dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: %s", out, strerror(errno));
	if ((*lockfd = openat(*dirfd, BATCH_LOCK, O_RDWR | O_CREAT |
	    O_CLOEXEC, 0644)) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s/%s: %s", out, BATCH_LOCK,
		    strerror(errno));
	if (flock(*lockfd, LOCK_EX | LOCK_NB) == -1)
		return err_set(e, errno == EWOULDBLOCK ? HSMCA_ERR_EXISTS :
		    HSMCA_ERR_IO, "%s: %s", out, errno == EWOULDBLOCK ?
		    "another batch is writing to this folder" :
		    strerror(errno));
	return 0;
}

/* The batch's record: what its run did, and why it stopped short if it
 * did (why: NULL if it ran to its end). */
static void
batch_summary(const struct batch *b, const struct batch_opts *o,
    const char *why, char *buf, size_t len)
{
	snprintf(buf, len, "batch sha256 %s, profile %s, %zu CSRs: %zu "
	    "issued, %zu already issued, %zu refused, %zu failed%s%s%s",
	    b->sha256, o->profile->name, b->nitems, b->stats.issued,
	    b->stats.existing, b->stats.refused, b->stats.failed,
	    b->stopped ? ", stopped at the first refusal" : "",
	    why != NULL ? "; the run failed: " : "", why != NULL ? why : "");
}

static void
set_phase(struct run *r, enum run_phase p)
{
	r->phase = p;
	r->next = 0;
	pthread_cond_broadcast(&r->cond);
}

int
batch_run(struct batch *b, const struct batch_signer *sg, void *ctx,
    const struct batch_opts *o, struct hsmca_err *e)
{
	struct run r;
	struct worker_arg *wa = NULL;
	struct hsmca_err ee;
	pthread_t *th = NULL;
	char summary[1024];
	int nth = 0, lockfd = -1, outcome, begun = 0;
	int ret = HSMCA_ERR_INTERNAL;

	memset(&r, 0, sizeof(r));
	r.b = b;
	r.sg = sg;
	r.o = o;
	r.dirfd = -1;
	r.t0 = batch_clock();
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cond, NULL);
	pthread_cond_init(&r.flush_cond, NULL);
	if (o->jobs < 1 || o->out == NULL) {
		ret = err_set(e, HSMCA_ERR_ARG, "batch: no jobs or no output");
		goto out;
	}
	if ((ret = open_out(o->out, &r.dirfd, &lockfd, e)) != 0)
		goto out;
	if ((r.workers = calloc((size_t)o->jobs, sizeof(*r.workers))) == NULL ||
	    (r.wq = calloc(b->nitems, sizeof(*r.wq))) == NULL ||
	    (wa = calloc((size_t)o->jobs, sizeof(*wa))) == NULL ||
	    (th = calloc((size_t)o->jobs, sizeof(*th))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* --fail-fast: one at a time, so nothing is signed after a
	 * refusal. */
	r.chunk = b->nitems / ((size_t)o->jobs * BATCH_CHUNKS_PER_JOB);
	if (r.chunk > BATCH_CHUNK_MAX)
		r.chunk = BATCH_CHUNK_MAX;
	if (r.chunk < 1 || o->fail_fast || sg->sign_chunk == NULL)
		r.chunk = 1;
	for (int i = 0; i < o->jobs; i++) {
		if ((ret = sg->worker_open(ctx, &r.workers[i], e)) != 0)
			goto out;
		if ((wa[i].ck.items = calloc(r.chunk,
		    sizeof(*wa[i].ck.items))) == NULL ||
		    (wa[i].ck.certs = calloc(r.chunk,
		    sizeof(*wa[i].ck.certs))) == NULL ||
		    (wa[i].ck.rets = calloc(r.chunk,
		    sizeof(*wa[i].ck.rets))) == NULL ||
		    (wa[i].ck.errs = calloc(r.chunk,
		    sizeof(*wa[i].ck.errs))) == NULL) {
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	}

	pthread_mutex_lock(&r.mu);
	r.phase = PHASE_CHECK;
	for (; nth < o->jobs; nth++) {
		wa[nth].r = &r;
		wa[nth].w = r.workers[nth];
		if (pthread_create(&th[nth], NULL, batch_worker,
		    &wa[nth]) != 0) {
			pthread_mutex_unlock(&r.mu);
			ret = err_set(e, HSMCA_ERR_INTERNAL, "pthread_create: "
			    "%s", strerror(errno));
			goto out;
		}
	}
	wait_phase(&r);
	pthread_mutex_unlock(&r.mu);

	/* Every CSR is checked: name the batch, record it, sign. */
	if ((ret = refuse_duplicates(&r, e)) != 0 ||
	    (ret = batch_hash(b, e)) != 0 ||
	    (ret = sg->begin(ctx, b->sha256, o->profile->name, b->nitems,
	    &b->id, &b->chain_pem, e)) != 0)
		goto out;
	/* From here on the batch's record ends, whatever happens. */
	begun = 1;
	/* Refusals found while checking, now that the batch has a name. */
	for (size_t i = 0; sg->refused != NULL && i < b->nitems; i++)
		if (b->items[i].status == BATCH_REFUSED)
			sg->refused(r.workers[0], &b->items[i]);
	if ((ret = drop_results(&r, e)) != 0)
		goto out;

	/* Without the flusher, the final syncfs does all the work. */
	r.flush_at = flush_every(&r);
	r.flusher_on = b->nitems > r.flush_at &&
	    pthread_create(&r.flusher, NULL, flusher_main, &r) == 0;

	pthread_mutex_lock(&r.mu);
	r.t_sign = batch_clock();
	set_phase(&r, PHASE_SIGN);
	if (!r.stop)
		wait_phase(&r);
	set_phase(&r, PHASE_STOP);
	pthread_mutex_unlock(&r.mu);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	nth = 0;
	flusher_stop(&r);
	b->stopped = r.stop;
	b->stats.elapsed = batch_clock() - r.t0;
	b->stats.sign_elapsed = batch_clock() - r.t_sign;

	if ((ret = write_results(&r, e)) != 0)
		goto out;
	outcome = b->stats.failed > 0 || b->stopped ? AUDIT_FAILED :
	    b->stats.refused > 0 ? AUDIT_REFUSED : AUDIT_OK;
	batch_summary(b, o, NULL, summary, sizeof(summary));
	begun = 0;
	ret = sg->end(ctx, outcome, summary, b->stats.issued +
	    b->stats.existing, b->stats.refused, e);
out:
	if (nth > 0) {
		pthread_mutex_lock(&r.mu);
		set_phase(&r, PHASE_STOP);
		pthread_mutex_unlock(&r.mu);
		for (int i = 0; i < nth; i++)
			pthread_join(th[i], NULL);
	}
	flusher_stop(&r);
	/* Begun and failed since (results.csv not written, say): the
	 * record says so; e keeps the reason the caller shows. */
	if (begun) {
		batch_summary(b, o, e->msg, summary, sizeof(summary));
		err_clear(&ee);
		(void)sg->end(ctx, AUDIT_FAILED, summary, b->stats.issued +
		    b->stats.existing, b->stats.refused, &ee);
	}
	for (int i = 0; r.workers != NULL && i < o->jobs; i++)
		if (r.workers[i] != NULL)
			sg->worker_close(r.workers[i]);
	free(r.workers);
	free(r.wq);
	for (int i = 0; wa != NULL && i < o->jobs; i++) {
		free(wa[i].ck.items);
		free(wa[i].ck.certs);
		free(wa[i].ck.rets);
		free(wa[i].ck.errs);
	}
	free(wa);
	free(th);
	if (lockfd != -1)
		close(lockfd);
	if (r.dirfd != -1)
		close(r.dirfd);
	pthread_mutex_destroy(&r.mu);
	pthread_cond_destroy(&r.cond);
	pthread_cond_destroy(&r.flush_cond);
	return ret;
}

/* ---- local mode: the HSM and the store of this machine ---- */

struct batch_local {
	struct hsm		*h;
	struct issuer		*iss;
	char			*store_path;
	struct store		*st;		/* the batch's record, audit */
	struct store_group	*group;		/* the workers' writes */
	int			 lockfd;
	char			 actor[128];
	char			 requester[192];	/* actor and batch */
	int64_t			 batch_id;
};

struct local_worker {
	struct batch_local	*l;
	struct store		*st;
};

int
batch_lock(const char *store_path, int *fd, struct hsmca_err *e)
{
	struct stat lsb, ssb;
	char lock[PATH_MAX];
	int ret;

	*fd = -1;
	if (snprintf(lock, sizeof(lock), "%s-batch.lock", store_path) >=
	    (int)sizeof(lock))
		return err_set(e, HSMCA_ERR_ARG, "%s: path too long",
		    store_path);
	if ((*fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: %s", lock,
		    strerror(errno));
	/* Made by root for a store another user owns (hsmcad's [daemon]
	 * user, who takes it too): given to that user, as SQLite gives it
	 * the store's -wal and -shm. */
	if (geteuid() == 0 && fstat(*fd, &lsb) == 0 && lsb.st_uid == 0 &&
	    stat(store_path, &ssb) == 0 && ssb.st_uid != 0 &&
	    fchown(*fd, ssb.st_uid, ssb.st_gid) == -1) {
		err_set(e, HSMCA_ERR_IO, "%s: chown: %s", lock,
		    strerror(errno));
		close(*fd);
		*fd = -1;
		return HSMCA_ERR_IO;
	}
	if (flock(*fd, LOCK_EX | LOCK_NB) == -1) {
		ret = errno == EWOULDBLOCK ? err_set(e, HSMCA_ERR_BUSY,
		    "another batch is signing with the store %s; wait for it "
		    "to finish", store_path) : err_set(e, HSMCA_ERR_IO,
		    "%s: %s", lock, strerror(errno));
		close(*fd);
		*fd = -1;
		return ret;
	}
	return 0;
}

int
batch_local_open(struct hsm *h, const char *store_path, struct issuer *iss,
    const char *actor, struct batch_local **out, struct hsmca_err *e)
{
	struct batch_local *l;
	int64_t stale;
	int ret = HSMCA_ERR_ALLOC;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return err_set(e, ret, "out of memory");
	l->lockfd = -1;
	l->h = h;
	l->iss = iss;
	issuer_precompute(iss);
	snprintf(l->actor, sizeof(l->actor), "%s", actor);
	if ((l->store_path = strdup(store_path)) == NULL) {
		err_set(e, ret, "out of memory");
		goto out;
	}
	/* The batch lock for the whole run: nobody else signs a batch's
	 * certificates meanwhile, so a batch reservation pending now was
	 * left behind by a run that died (between reserving and
	 * recording), and is marked failed: its CSR can be signed. */
	if ((ret = batch_lock(store_path, &l->lockfd, e)) != 0 ||
	    (ret = store_open(store_path, &l->st, e)) != 0 ||
	    (ret = store_batch_fail_reserved(l->st, &stale, e)) != 0 ||
	    (ret = store_group_open(store_path, &l->group, e)) != 0)
		goto out;
	*out = l;
	l = NULL;
	ret = 0;
out:
	batch_local_close(l);
	return ret;
}

void
batch_local_close(struct batch_local *l)
{
	if (l == NULL)
		return;
	store_group_close(l->group);
	store_close(l->st);
	if (l->lockfd != -1)
		close(l->lockfd);
	free(l->store_path);
	free(l);
}

int
batch_record_begin(struct store *st, struct issuer *iss, const char *sha256,
    const char *profile, const char *actor, size_t items, int64_t *batch_id,
    char **chain_pem, struct hsmca_err *e)
{
	struct store_batch sb;
	int ret;

	*chain_pem = NULL;
	if ((ret = store_batch_begin(st, sha256, profile, actor,
	    (int64_t)items, clock_now(), &sb, e)) != 0)
		return ret;
	*batch_id = sb.id;
	store_batch_free_fields(&sb);

	/* The chain every device gets after its certificate: the one
	 * ca_issuer_pem() gives for a generation. */
	return ca_issuer_pem(st, iss->gen_id, chain_pem, e);
}

static int
local_begin(void *ctx, const char *sha256, const char *profile, size_t items,
    int64_t *batch_id, char **chain_pem, struct hsmca_err *e)
{
	struct batch_local *l = ctx;
	int ret;

	if ((ret = batch_record_begin(l->st, l->iss, sha256, profile, l->actor,
	    items, batch_id, chain_pem, e)) != 0)
		return ret;
	l->batch_id = *batch_id;
	snprintf(l->requester, sizeof(l->requester), "%s batch:%" PRId64,
	    l->actor, l->batch_id);
	return 0;
}

static int
local_worker_open(void *ctx, void **out, struct hsmca_err *e)
{
	struct batch_local *l = ctx;
	struct local_worker *w;
	int ret;

	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	w->l = l;
	if ((ret = store_open(l->store_path, &w->st, e)) != 0) {
		free(w);
		return ret;
	}
	store_set_group(w->st, l->group);
	*out = w;
	return 0;
}

static void
local_worker_close(void *arg)
{
	struct local_worker *w = arg;

	store_close(w->st);
	free(w);
}

/* A device on the disallow list gets no certificate, here as in EST. */
int
batch_check_csr(struct store *st, const struct csr *csr, struct hsmca_err *e)
{
	char cn[256];

	switch (util_name_cn(X509_REQ_get_subject_name(csr->req), cn,
	    sizeof(cn))) {
	case 0:
		return store_disallow_check(st, cn, e);
	case 1:
		return 0;
	default:
		return err_set(e, HSMCA_ERR_ARG, "the CSR's subject has a "
		    "commonName that is repeated, does not decode or holds a "
		    "NUL");
	}
}

static int
local_check(void *arg, const struct batch_item *it, int fail_fast,
    struct hsmca_err *e)
{
	struct local_worker *w = arg;
	int ret;

	if ((ret = batch_check_csr(w->st, it->csr, e)) != 0 || !fail_fast)
		return ret;
	return batch_check_sign(w->st, w->l->iss, it->csr, it->profile, e);
}

static int
der_to_pem(const unsigned char *der, size_t len, char **out,
    struct hsmca_err *e)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
	static const char end[] = "-----END CERTIFICATE-----\n";
	char *b64 = NULL;
	size_t n = 0;
	int ret;

	*out = NULL;
	if ((ret = util_b64_encode(der, len, &b64, &n, e)) != 0)
		return ret;
	if ((*out = malloc(sizeof(begin) + n + sizeof(end))) == NULL) {
		free(b64);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	memcpy(*out, begin, sizeof(begin) - 1);
	memcpy(*out + sizeof(begin) - 1, b64, n);
	memcpy(*out + sizeof(begin) - 1 + n, end, sizeof(end));
	free(b64);
	return 0;
}

/* What the store holds for this CSR: 1 and *found if a certificate was
 * issued for it (valid or revoked), 0 if none. */
static int
batch_lookup(struct store *st, const struct csr *csr,
    struct store_cert *found, struct hsmca_err *e)
{
	struct store_cert *v = NULL;
	size_t n = 0;
	int ret, have = 0;

	memset(found, 0, sizeof(*found));
	if ((ret = store_certs_by_csr(st, csr->fingerprint_hex, &v, &n,
	    e)) != 0)
		return ret;
	for (size_t i = 0; i < n && !have; i++)
		if (v[i].status == STORE_CERT_VALID ||
		    v[i].status == STORE_CERT_REVOKED) {
			*found = v[i];
			memset(&v[i], 0, sizeof(v[i]));
			have = 1;
		}
	store_certs_free(v, n);
	return have;
}

/* A certificate of CA generation gen handed out by a caller whose
 * chain is chain_gen's: the chain of its own generation if that is
 * another (the CA rotated since, or during a remote batch). */
static int
batch_chain(struct store *st, int64_t gen, int64_t chain_gen,
    struct batch_cert *out, struct hsmca_err *e)
{
	if (gen == chain_gen)
		return 0;
	return ca_issuer_pem(st, gen, &out->chain, e);
}

/* The certificate already issued for csr: 1 and *prev if it can be
 * handed out again, 0 if there is none, a refusal if it cannot: it was
 * revoked, its CA generation was revoked, it has expired (a device needs
 * a new key and CSR then, as after a revocation: one CSR, one
 * certificate), or it is another profile's. */
static int
batch_found(struct store *st, const struct csr *csr,
    const struct profile *profile, struct store_cert *prev,
    struct hsmca_err *e)
{
	struct store_generation g;
	char when[32];
	int ret;

	memset(&g, 0, sizeof(g));
	if ((ret = batch_lookup(st, csr, prev, e)) != 1)
		return ret;
	if (prev->status == STORE_CERT_REVOKED)
		ret = err_set(e, HSMCA_ERR_EXISTS, "this CSR already had "
		    "certificate serial %s, now revoked: a new key and CSR "
		    "are needed", prev->serial);
	else if ((ret = store_get_generation(st, prev->issuer_id, &g,
	    e)) != 0)
		;
	else if (g.status == STORE_GEN_REVOKED)
		ret = err_set(e, HSMCA_ERR_EXISTS, "this CSR already has "
		    "certificate serial %s, issued by CA generation %" PRId64
		    " which was revoked since: a new key and CSR are needed",
		    prev->serial, prev->issuer_id);
	else if (prev->not_after <= clock_now())
		ret = err_set(e, HSMCA_ERR_EXISTS, "this CSR already had "
		    "certificate serial %s, expired %s: a new key and CSR "
		    "are needed", prev->serial, clock_format(prev->not_after,
		    when, sizeof(when)));
	else if (prev->profile == NULL ||
	    strcmp(prev->profile, profile->name) != 0)
		ret = err_set(e, HSMCA_ERR_EXISTS, "this CSR already has "
		    "certificate serial %s from profile %s", prev->serial,
		    prev->profile != NULL ? prev->profile : "(none)");
	else
		ret = 1;
	store_generation_free_fields(&g);
	if (ret != 1)
		store_cert_free_fields(prev);
	return ret;
}

/* The certificate already issued for csr: 1 and *out (EXISTING) if
 * there is one to return, 0 if none, a refusal if it cannot be
 * returned (batch_found). */
static int
batch_existing(struct store *st, int64_t chain_gen, const struct csr *csr,
    const struct profile *profile, struct batch_cert *out,
    struct hsmca_err *e)
{
	struct store_cert prev;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = batch_found(st, csr, profile, &prev, e)) != 1)
		return ret;
	if ((ret = der_to_pem(prev.der, prev.der_len, &out->pem, e)) == 0 &&
	    (ret = batch_chain(st, prev.issuer_id, chain_gen, out, e)) == 0) {
		out->status = BATCH_EXISTING;
		memcpy(out->serial, prev.serial, sizeof(out->serial));
		memcpy(out->sha256, prev.sha256, sizeof(out->sha256));
		ret = 1;
	}
	if (ret != 1)
		batch_cert_free_fields(out);
	store_cert_free_fields(&prev);
	return ret;
}

/* csr's batch reservation was refused (HSMCA_ERR_BUSY): since it was
 * looked up, another run either recorded a certificate for it, handed
 * out (or refused) as any, or is signing it now. */
static int
batch_taken(struct store *st, int64_t chain_gen, const struct csr *csr,
    const struct profile *profile, struct batch_cert *out,
    struct hsmca_err *e)
{
	int ret;

	err_clear(e);
	if ((ret = batch_existing(st, chain_gen, csr, profile, out, e)) == 0)
		ret = err_set(e, HSMCA_ERR_BUSY, "another batch is signing "
		    "this CSR now; run the batch again");
	return ret == 1 ? 0 : ret;
}

int
batch_check_sign(struct store *st, struct issuer *iss, const struct csr *csr,
    const struct profile *profile, struct hsmca_err *e)
{
	struct store_cert prev;
	struct issue_request req;
	int ret;

	if ((ret = batch_found(st, csr, profile, &prev, e)) != 0) {
		if (ret == 1)
			store_cert_free_fields(&prev);
		return ret == 1 ? 0 : ret;
	}
	if (iss == NULL)
		return 0;
	memset(&req, 0, sizeof(req));
	req.csr = csr;
	req.profile = profile;
	req.now = clock_now();
	return issue_check(iss, &req, e);
}

void
batch_cert_free_fields(struct batch_cert *c)
{
	free(c->pem);
	free(c->chain);
	c->pem = NULL;
	c->chain = NULL;
}

/* A certificate iss just issued, as the batch hands it out. */
static int
batch_issued(struct store *st, const struct issuer *iss, int64_t chain_gen,
    const struct issue_result *res, struct batch_cert *out,
    struct hsmca_err *e)
{
	unsigned char *der = NULL;
	int len, ret;

	if ((len = i2d_X509(res->cert, &der)) <= 0)
		return err_set(e, HSMCA_ERR_INTERNAL, "cannot encode "
		    "certificate serial %s (it is recorded)", res->serial);
	ret = der_to_pem(der, (size_t)len, &out->pem, e);
	OPENSSL_free(der);
	if (ret == 0 && (ret = batch_chain(st, iss->gen_id, chain_gen, out,
	    e)) != 0)
		batch_cert_free_fields(out);
	if (ret != 0)
		return ret;
	out->status = BATCH_ISSUED;
	memcpy(out->serial, res->serial, sizeof(out->serial));
	memcpy(out->sha256, res->sha256, sizeof(out->sha256));
	return 0;
}

int
batch_sign_csr(struct hsm *h, struct store *st, struct issuer *iss,
    const char *requester, int64_t batch_id, int64_t chain_gen,
    const struct csr *csr, const struct profile *profile,
    struct batch_cert *out, struct hsmca_err *e)
{
	struct issue_request req;
	struct issue_result res;
	int ret;

	memset(&res, 0, sizeof(res));
	if (chain_gen == 0)
		chain_gen = iss->gen_id;
	if ((ret = batch_existing(st, chain_gen, csr, profile, out, e)) != 0)
		return ret == 1 ? 0 : ret;

	/* The issuance path every certificate takes (lib/issue.c). */
	memset(&req, 0, sizeof(req));
	req.csr = csr;
	req.profile = profile;
	req.requester = requester;
	req.now = clock_now();
	req.batch_id = batch_id;
	if ((ret = issue_certificate(h, st, iss, &req, &res, e)) == 0)
		ret = batch_issued(st, iss, chain_gen, &res, out, e);
	else if (ret == HSMCA_ERR_BUSY)
		ret = batch_taken(st, chain_gen, csr, profile, out, e);
	issue_result_free(&res);
	return ret;
}

static int
local_sign(void *arg, const struct batch_item *it, struct batch_cert *out,
    struct hsmca_err *e)
{
	struct local_worker *w = arg;
	struct batch_local *l = w->l;

	return batch_sign_csr(l->h, w->st, l->iss, l->requester, l->batch_id,
	    0, it->csr, it->profile, out, e);
}

int
batch_sign_csrs(struct hsm *h, struct store *st, struct issuer *iss,
    const char *requester, int64_t batch_id, int64_t chain_gen,
    const struct csr *const *csrs, const struct profile *const *profiles,
    size_t n, struct batch_cert *out, int *rets, struct hsmca_err *errs)
{
	struct issue_request *reqs;
	struct issue_result *res;
	struct hsmca_err *nerrs;
	size_t *idx, k = 0, i, j;
	int *nrets, *dup;
	time_t now = clock_now();

	if (chain_gen == 0)
		chain_gen = iss->gen_id;
	reqs = calloc(n, sizeof(*reqs));
	res = calloc(n, sizeof(*res));
	nerrs = calloc(n, sizeof(*nerrs));
	idx = calloc(n, sizeof(*idx));
	nrets = calloc(n, sizeof(*nrets));
	dup = calloc(n, sizeof(*dup));
	if (reqs == NULL || res == NULL || nerrs == NULL || idx == NULL ||
	    nrets == NULL || dup == NULL) {
		for (i = 0; i < n; i++)
			rets[i] = err_set(&errs[i], HSMCA_ERR_ALLOC,
			    "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		err_clear(&errs[i]);
		/* The same CSR twice: the later one after the first is
		 * recorded, so it gets the first one's certificate. */
		for (j = 0; j < i && !dup[i]; j++)
			dup[i] = strcmp(csrs[j]->fingerprint_hex,
			    csrs[i]->fingerprint_hex) == 0;
		if (dup[i])
			continue;
		if ((rets[i] = batch_existing(st, chain_gen, csrs[i],
		    profiles[i], &out[i], &errs[i])) != 0) {
			if (rets[i] == 1)
				rets[i] = 0;
			continue;
		}
		reqs[k].csr = csrs[i];
		reqs[k].profile = profiles[i];
		reqs[k].requester = requester;
		reqs[k].now = now;
		reqs[k].batch_id = batch_id;
		idx[k++] = i;
	}
	if (k > 0)
		(void)issue_certificates(h, st, iss, reqs, k, res, nrets,
		    nerrs);
	for (j = 0; j < k; j++) {
		i = idx[j];
		if (nrets[j] == HSMCA_ERR_BUSY)
			rets[i] = batch_taken(st, chain_gen, csrs[i],
			    profiles[i], &out[i], &errs[i]);
		else if ((rets[i] = nrets[j]) != 0)
			errs[i] = nerrs[j];
		else
			rets[i] = batch_issued(st, iss, chain_gen, &res[j],
			    &out[i], &errs[i]);
		issue_result_free(&res[j]);
	}
	for (i = 0; i < n; i++)
		if (dup[i])
			rets[i] = batch_sign_csr(h, st, iss, requester,
			    batch_id, chain_gen, csrs[i], profiles[i],
			    &out[i], &errs[i]);
out:
	free(reqs);
	free(res);
	free(nerrs);
	free(idx);
	free(nrets);
	free(dup);
	return 0;
}

/* Several CSRs: each looked up as batch_sign_csr does, the new ones
 * issued together (lib/issue.c issue_certificates). */
static void
local_sign_chunk(void *arg, struct batch_item *const *items, size_t n,
    struct batch_cert *out, int *rets, struct hsmca_err *errs)
{
	struct local_worker *w = arg;
	struct batch_local *l = w->l;
	const struct csr **csrs;
	const struct profile **profiles;
	size_t i;

	csrs = calloc(n, sizeof(*csrs));
	profiles = calloc(n, sizeof(*profiles));
	if (csrs == NULL || profiles == NULL) {
		for (i = 0; i < n; i++)
			rets[i] = err_set(&errs[i], HSMCA_ERR_ALLOC,
			    "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		csrs[i] = items[i]->csr;
		profiles[i] = items[i]->profile;
	}
	(void)batch_sign_csrs(l->h, w->st, l->iss, l->requester, l->batch_id,
	    0, csrs, profiles, n, out, rets, errs);
out:
	free(csrs);
	free(profiles);
}

/* A refused CSR, in the audit log under the batch's name. */
void
batch_record_refused(struct store *st, const char *requester,
    int64_t batch_id, const char *device, const char *reason)
{
	struct audit_event ev;
	char object[BATCH_DEVICE_MAX + 48];

	snprintf(object, sizeof(object), "batch:%" PRId64 " device:%s",
	    batch_id, device);
	memset(&ev, 0, sizeof(ev));
	ev.actor = requester;
	ev.action = AUDIT_REFUSE;
	ev.object = object;
	ev.outcome = AUDIT_REFUSED;
	ev.detail = reason;
	/* Best effort: the refusal is also in results.csv. */
	(void)audit_append(st, &ev, NULL);
}

static void
local_refused(void *arg, const struct batch_item *it)
{
	struct local_worker *w = arg;

	batch_record_refused(w->st, w->l->requester, w->l->batch_id,
	    it->device, it->reason);
}

/* The batch's own record and audit entry, committed together. */
int
batch_record_end(struct store *st, int64_t batch_id, const char *actor,
    int outcome, const char *summary, size_t signed_, size_t refused,
    struct hsmca_err *e)
{
	struct audit_event ev;
	char object[32];
	int ret;

	snprintf(object, sizeof(object), "batch:%" PRId64, batch_id);
	memset(&ev, 0, sizeof(ev));
	ev.actor = actor;
	ev.action = AUDIT_ISSUE;
	ev.object = object;
	ev.outcome = (enum audit_outcome)outcome;
	ev.detail = summary;
	if ((ret = store_begin(st, e)) != 0)
		return ret;
	if ((ret = store_batch_finish(st, batch_id, clock_now(),
	    (int64_t)signed_, (int64_t)refused, e)) != 0 ||
	    (ret = audit_append(st, &ev, e)) != 0 ||
	    (ret = store_commit(st, e)) != 0) {
		store_rollback(st);
		return ret;
	}
	return 0;
}

static int
local_end(void *ctx, int outcome, const char *summary, size_t signed_,
    size_t refused, struct hsmca_err *e)
{
	struct batch_local *l = ctx;

	return batch_record_end(l->st, l->batch_id, l->actor, outcome, summary,
	    signed_, refused, e);
}

const struct batch_signer batch_local_signer = {
	.name = "local",
	.begin = local_begin,
	.worker_open = local_worker_open,
	.check = local_check,
	.sign = local_sign,
	.sign_chunk = local_sign_chunk,
	.refused = local_refused,
	.worker_close = local_worker_close,
	.end = local_end,
};
