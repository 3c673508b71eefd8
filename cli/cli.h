/* cli.h: the hsmca command-line tool: one table of commands, one file
 * per command group, one output layer for tables and JSON. */
#ifndef HSMCA_CLI_H
#define HSMCA_CLI_H

#include <jansson.h>

#include "hsmca/audit.h"
#include "hsmca/ca.h"
#include "hsmca/config.h"
#include "hsmca/err.h"
#include "hsmca/hsm.h"
#include "hsmca/store.h"

/* Exit codes (documented in hsmca(1) and README). */
#define CLI_EXIT_OK		0
#define CLI_EXIT_FAIL		1	/* refused or failed; the message says why */
#define CLI_EXIT_USAGE		2
#define CLI_EXIT_NOT_FOUND	3
#define CLI_EXIT_HSM		4	/* HSM unavailable or login refused */
#define CLI_EXIT_STORE		5
#define CLI_EXIT_DENIED		6	/* the admin API refused the caller */
#define CLI_EXIT_PARTIAL	7	/* batch: some refused, the others signed */

#define CLI_NEED_STORE	0x01
#define CLI_NEED_HSM	0x02
#define CLI_NO_CONFIG	0x04	/* a device-side command: no operator config */
#define CLI_SELF_REMOTE	0x08	/* with --server, it calls the admin API itself */
/* What such a command needs here when it runs against a server. */
#define CLI_REMOTE_NEEDS(n)	((n) & ~(CLI_NEED_STORE | CLI_NEED_HSM))

struct cli {
	const char		*config_path;
	int			 json;
	FILE			*out;		/* stdout, or a remote caller's */
	FILE			*errout;	/* stderr, or a remote caller's */
	/* Running for a remote operator (the admin API): files are the
	 * ones the client sent ("@in:N", base64) and the ones it gets back
	 * ("@out:N"); a path on the appliance is never opened for it. */
	int			 remote;
	json_t			*files_in;
	json_t			*files_out;
	/* A CLI_SELF_REMOTE command against the admin API (NULL: local). */
	const char		*server, *server_cert, *server_key, *server_ca;
	struct config		*cfg;
	struct store		*st;
	struct hsm		*hsm;
	struct ca_ctx		 ca;
	struct hsmca_err	 err;
};

struct cli_cmd {
	const char	*group;		/* "ca", "cert" ... or NULL */
	const char	*name;
	const char	*args;		/* usage after the command name */
	const char	*summary;
	const char	*help;		/* option lines, or NULL */
	unsigned int	 needs;		/* CLI_NEED_* */
	int		(*fn)(struct cli *, int, char **);
};

extern const struct cli_cmd cmd_ca_table[];
extern const struct cli_cmd cmd_issue_table[];
extern const struct cli_cmd cmd_cert_table[];
extern const struct cli_cmd *const cli_cmd_tables[];
extern const struct cli_cmd cmd_token_table[];
extern const struct cli_cmd cmd_config_table[];
extern const struct cli_cmd cmd_est_table[];
extern const struct cli_cmd cmd_revoke_table[];
extern const struct cli_cmd cmd_crl_table[];
extern const struct cli_cmd cmd_disallow_table[];
extern const struct cli_cmd cmd_audit_table[];
extern const struct cli_cmd cmd_batch_table[];

/* Who the CLI is in the audit log: "cli:USER". */
const char	*cli_actor(void);
/* Append an audit record (in c->st's open transaction, if any). */
int	cli_audit(struct cli *c, enum audit_action action, const char *object,
	    enum audit_outcome outcome, const char *detail);
extern const struct cli_cmd cmd_expiring_table[];

/* The command argv names (after the global options), or NULL;
 * *consumed: how many words named it. */
const struct cli_cmd *cli_find_cmd(int argc, char **argv, int *consumed);
int	cli_group_known(const char *name);
void	cli_help_cmd(FILE *fp, const struct cli_cmd *cmd);

/* May cmd run through the admin API? Then *role is the least role that
 * may run it and *files its file options ("<x:name >y:name", or NULL). */
int	cli_remote_rule(const struct cli_cmd *cmd, enum config_role *role,
	    const char **files);
const char *cli_role_name(enum config_role r);
/* Run one command line (argv[0] the command) for a remote operator with
 * role; c has cfg, st, hsm, out, errout, files and ca.actor set. what
 * receives the command's name. Returns the exit code. */
int	cli_run_remote(struct cli *c, enum config_role role, int argc,
	    char **argv, char *what, size_t whatlen);
/* The hsmca side of it: send the command line to the admin API. */
int	cli_remote_main(struct cli *c, const char *server, const char *cert,
	    const char *key, const char *cacert, int argc, char **argv);

/* hsmca batch sign --server: the batch through the admin API (cli/
 * batch-remote.c); *denied when the API refused the operator. */
struct batch;
struct batch_opts;
int	cli_batch_remote_run(struct cli *c, struct batch *b,
	    const struct batch_opts *o, int *denied);

/* Read an input file a command was given (remotely: one the client
 * sent); an exit code after printing why not. */
int	cli_read_input(struct cli *c, const char *path, size_t max,
	    unsigned char **buf, size_t *len);

/* Open what a command needs (store, HSM). */
int	cli_open(struct cli *c, unsigned int needs);
/* Print "hsmca: message" for an error and return the exit code. */
int	cli_error(struct cli *c, int code);
int	cli_errorx(struct cli *c, int exit_code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
int	cli_usage(const struct cli_cmd *cmd);
int	cli_exit_code(int errcode);

/* Output: a list of objects as an aligned table, or a JSON array; one
 * object as "key: value" lines, or a JSON object. */
struct out_col {
	const char	*key;		/* JSON member */
	const char	*title;		/* column title / label */
};
void	out_list(const struct cli *c, json_t *rows, const struct out_col *cols);
void	out_object(const struct cli *c, json_t *obj, const struct out_col *fields);
/* Times as "YYYY-MM-DDTHH:MM:SSZ" strings. */
json_t	*out_time(time_t t);

/* The id of the generation a person named (id or thumbprint), or an
 * exit code after printing why not. */
int	cli_generation_id(struct cli *c, const char *ref, int64_t *id);

/* Parse a decimal number in [min, max]; -1 with a message if it is not. */
int	cli_number(struct cli *c, const char *what, const char *s,
	    long long min, long long max, long long *out);

/* Write data to path (0644) or stdout when path is NULL or "-". */
int	cli_write_output(struct cli *c, const char *path, const void *data,
	    size_t len);

#endif
