/* fileset.c: the files a configuration names, read once (fileset.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsmca/fileset.h"
#include "hsmca/util.h"

struct fileset *
fileset_new(void)
{
	return calloc(1, sizeof(struct fileset));
}

int
fileset_put(struct fileset *fs, const char *path, const unsigned char *data,
    size_t len, int errnum, const char *why, struct hsmca_err *e)
{
	struct fileset_file *v, *f;

	if (fileset_get(fs, path) != NULL)
		return 0;
	if ((v = reallocarray(fs->v, fs->n + 1, sizeof(*v))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	fs->v = v;
	f = &fs->v[fs->n];
	memset(f, 0, sizeof(*f));
	f->errnum = errnum;
	if ((f->path = strdup(path)) == NULL ||
	    (why != NULL && (f->why = strdup(why)) == NULL) ||
	    (data != NULL && (f->data = malloc(len + 1)) == NULL)) {
		free(f->path);
		free(f->why);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	if (data != NULL) {
		memcpy(f->data, data, len);
		f->data[len] = '\0';
		f->len = len;
	}
	fs->n++;
	return 0;
}

int
fileset_read(struct fileset *fs, const char *path, struct hsmca_err *e)
{
	struct hsmca_err re;
	unsigned char *data = NULL;
	size_t len = 0;
	int fd, errnum = 0, ret;

	if (fileset_get(fs, path) != NULL)
		return 0;
	err_clear(&re);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		errnum = errno;
		err_set(&re, HSMCA_ERR_IO, "%s: %s", path, strerror(errnum));
	} else {
		if ((ret = util_read_fd(fd, path, FILESET_FILE_MAX, &data,
		    &len, &re)) == HSMCA_ERR_ALLOC) {
			close(fd);
			return err_set(e, ret, "%s", re.msg);
		}
		if (ret != 0)
			errnum = EIO;
		close(fd);
	}
	ret = fileset_put(fs, path, data, len, errnum,
	    errnum != 0 ? re.msg : NULL, e);
	util_freezero(data, len);
	return ret;
}

const struct fileset_file *
fileset_get(const struct fileset *fs, const char *path)
{
	for (size_t i = 0; fs != NULL && i < fs->n; i++)
		if (strcmp(fs->v[i].path, path) == 0)
			return &fs->v[i];
	return NULL;
}

int
fileset_data(const struct fileset *fs, const char *path,
    const unsigned char **data, size_t *len, struct hsmca_err *e)
{
	const struct fileset_file *f;

	if ((f = fileset_get(fs, path)) == NULL)
		return err_set(e, HSMCA_ERR_INTERNAL, "%s: not read with the "
		    "configuration (a reload reads it)", path);
	if (f->data == NULL)
		return err_set(e, HSMCA_ERR_IO, "%s", f->why != NULL ? f->why :
		    path);
	*data = f->data;
	*len = f->len;
	return 0;
}

struct fileset *
fileset_dup(const struct fileset *fs)
{
	struct fileset *d;
	struct hsmca_err e;

	if ((d = fileset_new()) == NULL)
		return NULL;
	for (size_t i = 0; fs != NULL && i < fs->n; i++)
		if (fileset_put(d, fs->v[i].path, fs->v[i].data, fs->v[i].len,
		    fs->v[i].errnum, fs->v[i].why, &e) != 0) {
			fileset_free(d);
			return NULL;
		}
	return d;
}

void
fileset_free(struct fileset *fs)
{
	if (fs == NULL)
		return;
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->v[i].path);
		free(fs->v[i].why);
		/* A file may be a key one day: never leave one behind. */
		if (fs->v[i].data != NULL)
			util_freezero(fs->v[i].data, fs->v[i].len + 1);
	}
	free(fs->v);
	free(fs);
}
