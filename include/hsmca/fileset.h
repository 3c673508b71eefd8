/* fileset.h: the files a configuration names, read once.
 *
 * hsmcad's parent reads the configuration file and every file it names
 * (tls-cert, each bootstrap-ca, the admin client-ca) into a fileset at
 * start-up and at each SIGHUP, and hands the same bytes to the front and
 * the signer: both parse one snapshot, and the sandboxed front opens no
 * file once it serves (bgpd's parent reads bgpd.conf for its children
 * the same way). A file that could not be read is kept with the reason,
 * so whoever needs it reports it as it would have on opening it. */
#ifndef HSMCA_FILESET_H
#define HSMCA_FILESET_H

#include <stddef.h>

#include "hsmca/err.h"

/* The largest file a fileset takes (a bundle of trusted certificates is
 * the largest there is). */
#define FILESET_FILE_MAX	(4U * 1024 * 1024)

struct fileset_file {
	char		*path;
	unsigned char	*data;		/* NUL-terminated; NULL if unread */
	size_t		 len;
	int		 errnum;	/* errno of the read, 0 if read */
	char		*why;		/* the read's error, NULL if read */
};

struct fileset {
	struct fileset_file	*v;
	size_t			 n;
};

/* An empty set; NULL if out of memory. */
struct fileset *fileset_new(void);
/* Read path into fs (once: a path already there is left as it is). A
 * file that does not read is added with its errnum and why; only an
 * allocation failure is an error. */
int	fileset_read(struct fileset *fs, const char *path,
	    struct hsmca_err *e);
/* Add a file's bytes as they are (the receiving end of a fileset sent
 * whole); errnum and why as fileset_read records them. */
int	fileset_put(struct fileset *fs, const char *path,
	    const unsigned char *data, size_t len, int errnum, const char *why,
	    struct hsmca_err *e);
/* The file at exactly path, or NULL if fs does not hold it. */
const struct fileset_file *fileset_get(const struct fileset *fs,
	    const char *path);
/* path's bytes (valid while fs is): 0; or an error naming path and why
 * it was not read (HSMCA_ERR_IO), or that fs does not hold it
 * (HSMCA_ERR_INTERNAL: the snapshot missed a file the config names). */
int	fileset_data(const struct fileset *fs, const char *path,
	    const unsigned char **data, size_t *len, struct hsmca_err *e);
/* A deep copy; NULL if out of memory. */
struct fileset *fileset_dup(const struct fileset *fs);
void	fileset_free(struct fileset *fs);

#endif
