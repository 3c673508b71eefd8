/* remote.c: hsmca against hsmcad's admin API. The command line goes to
 * POST /api/v1/run over mutual TLS; the daemon runs the same command
 * and answers with what it printed and its exit code, so a remote call
 * reads exactly like a local one. Files the command reads are sent with
 * the request, files it writes come back and are written here: the
 * daemon never opens a path a remote caller names. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsmca/util.h"

#include "cli.h"
#include "est-client.h"

#define REMOTE_FILE_MAX		(32 * 1024 * 1024)
#define REMOTE_REPLY_MAX	(256 * 1024 * 1024)
#define REMOTE_FILES_MAX	8

/* A file option's token in the request and the path it stands for. */
struct remote_out {
	char	 token[16];
	char	*path;
	int	 output;
};

/* Is arg the file option of spec ("<x:name >y:name")? *dir '<' or '>',
 * *value the value when it is in the same word, *name the option. */
static int
file_option(const char *spec, const char *arg, char *dir, const char **value,
    char *name, size_t namelen)
{
	const char *p = spec;

	while (p != NULL && *p != '\0') {
		char d = p[0], shortopt = p[1];
		const char *lname = p + 3, *end = strchr(lname, ' ');
		size_t n = end != NULL ? (size_t)(end - lname) : strlen(lname);

		p = end != NULL ? end + 1 : NULL;
		if (arg[0] == '-' && arg[1] == '-' && strncmp(arg + 2, lname, n)
		    == 0 && (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
			*dir = d;
			*value = arg[2 + n] == '=' ? arg + 3 + n : NULL;
			snprintf(name, namelen, "--%.*s", (int)n, lname);
			return 1;
		}
		if (shortopt != '-' && arg[0] == '-' && arg[1] == shortopt) {
			*dir = d;
			*value = arg[2] != '\0' ? arg + 2 : NULL;
			snprintf(name, namelen, "-%c", shortopt);
			return 1;
		}
	}
	return 0;
}

static int
read_input(struct cli *c, const char *path, json_t *files, int n,
    char *token, size_t tlen)
{
	unsigned char *buf = NULL;
	char *b64 = NULL;
	size_t len = 0, b64len;
	int ret;

	if (strcmp(path, "-") == 0) {
		size_t cap = 0;

		for (;;) {
			size_t got;

			if (len == cap) {
				unsigned char *nb;

				cap = cap == 0 ? 65536 : cap * 2;
				if (cap > REMOTE_FILE_MAX + 1 ||
				    (nb = realloc(buf, cap)) == NULL) {
					free(buf);
					return cli_errorx(c, CLI_EXIT_FAIL,
					    "standard input: larger than %d "
					    "bytes", REMOTE_FILE_MAX);
				}
				buf = nb;
			}
			if ((got = fread(buf + len, 1, cap - len, stdin)) == 0)
				break;
			len += got;
		}
		if (ferror(stdin)) {
			free(buf);
			return cli_errorx(c, CLI_EXIT_FAIL, "cannot read standard "
			    "input");
		}
	} else if ((ret = util_read_file(path, REMOTE_FILE_MAX, &buf, &len,
	    &c->err)) != 0)
		return cli_error(c, ret);
	snprintf(token, tlen, "@in:%d", n);
	if (len > 0 && (ret = util_b64_encode(buf, len, &b64, &b64len,
	    &c->err)) != 0) {
		util_freezero(buf, len);
		return cli_error(c, ret);
	}
	json_object_set_new(files, token, json_string(b64 != NULL ? b64 : ""));
	util_freezero(buf, len);
	free(b64);
	return CLI_EXIT_OK;
}

/* The request body: the command line with file options replaced by
 * tokens, and the input files. */
static int
build_request(struct cli *c, const char *spec, int consumed, int argc,
    char **argv, json_t **out, struct remote_out *outs, size_t *nouts)
{
	json_t *req, *args, *files;
	int nin = 0, nout = 0, ret, i;

	*nouts = 0;
	req = json_object();
	args = json_array();
	files = json_object();
	json_object_set_new(req, "argv", args);
	json_object_set_new(req, "json", json_boolean(c->json));
	json_object_set_new(req, "files", files);
	for (i = 0; i < argc; i++) {
		const char *value, *arg = argv[i];
		char dir, name[64], token[16];

		if (i < consumed || spec == NULL || strcmp(arg, "--") == 0 ||
		    !file_option(spec, arg, &dir, &value, name, sizeof(name))) {
			json_array_append_new(args, json_string(arg));
			if (i >= consumed && strcmp(arg, "--") == 0)
				spec = NULL;
			continue;
		}
		if (value == NULL) {
			if (i + 1 >= argc) {
				/* The command reports the missing value. */
				json_array_append_new(args, json_string(arg));
				continue;
			}
			value = argv[++i];
		}
		if (dir == '<') {
			if (nin >= REMOTE_FILES_MAX) {
				json_decref(req);
				return cli_errorx(c, CLI_EXIT_USAGE, "too many "
				    "input files");
			}
			if ((ret = read_input(c, value, files, nin++, token,
			    sizeof(token))) != CLI_EXIT_OK) {
				json_decref(req);
				return ret;
			}
			if (*nouts < REMOTE_FILES_MAX * 2 &&
			    (outs[*nouts].path = strdup(value)) != NULL) {
				snprintf(outs[*nouts].token,
				    sizeof(outs[0].token), "%s", token);
				(*nouts)++;
			}
		} else if (strcmp(value, "-") == 0)
			snprintf(token, sizeof(token), "-");
		else {
			if (nout >= REMOTE_FILES_MAX || *nouts >=
			    REMOTE_FILES_MAX * 2 ||
			    (outs[*nouts].path = strdup(value)) == NULL) {
				json_decref(req);
				return cli_errorx(c, CLI_EXIT_USAGE, "too many "
				    "output files");
			}
			snprintf(token, sizeof(token), "@out:%d", nout++);
			snprintf(outs[*nouts].token, sizeof(outs[0].token), "%s",
			    token);
			outs[*nouts].output = 1;
			(*nouts)++;
		}
		json_array_append_new(args, json_string(name));
		json_array_append_new(args, json_string(token));
	}
	*out = req;
	return CLI_EXIT_OK;
}

/* A refusal from the API: {"error": "..."} or the status line. */
static int
api_refusal(const struct est_reply *r)
{
	json_t *o = json_loadb((const char *)r->body, r->len, 0, NULL);
	json_t *m = o != NULL ? json_object_get(o, "error") : NULL;

	fprintf(stderr, "hsmca: the admin API refused (%d): %s\n", r->status,
	    m != NULL && json_is_string(m) ? json_string_value(m) : r->reason);
	json_decref(o);
	if (r->status == 401 || r->status == 403)
		return CLI_EXIT_DENIED;
	if (r->status == 503)
		return CLI_EXIT_HSM;
	return CLI_EXIT_FAIL;
}

/* What the command printed, with the tokens that stood for files named
 * by their paths again, as a local run would have printed them. */
static void
print_text(FILE *fp, const char *text, const struct remote_out *outs,
    size_t nouts, int json)
{
	while (*text != '\0') {
		const char *at = strchr(text, '@');
		size_t i, n;

		if (at == NULL) {
			fputs(text, fp);
			return;
		}
		fwrite(text, 1, (size_t)(at - text), fp);
		for (i = 0; i < nouts; i++) {
			n = strlen(outs[i].token);
			if (strncmp(at, outs[i].token, n) == 0 &&
			    (at[n] < '0' || at[n] > '9'))
				break;
		}
		if (i < nouts && json) {
			/* Inside a JSON string: escaped as JSON. */
			json_t *js = json_string(outs[i].path);
			char *q = js != NULL ? json_dumps(js, JSON_ENCODE_ANY) :
			    NULL;

			if (q != NULL && strlen(q) >= 2)
				fwrite(q + 1, 1, strlen(q) - 2, fp);
			free(q);
			json_decref(js);
			text = at + strlen(outs[i].token);
		} else if (i < nouts) {
			fputs(outs[i].path, fp);
			text = at + strlen(outs[i].token);
		} else {
			fputc('@', fp);
			text = at + 1;
		}
	}
}

static int
write_outputs(struct cli *c, json_t *files, struct remote_out *outs,
    size_t nouts)
{
	for (size_t i = 0; i < nouts; i++) {
		json_t *v = json_object_get(files, outs[i].token);
		unsigned char *data = NULL;
		size_t len = 0;
		int ret;

		if (!outs[i].output || v == NULL)
			continue;	/* the command did not write it */
		if (!json_is_string(v))
			return cli_errorx(c, CLI_EXIT_FAIL, "the server sent a "
			    "bad file");
		if (json_string_length(v) > 0 && util_b64_decode((const
		    unsigned char *)json_string_value(v), json_string_length(v),
		    &data, &len, &c->err) != 0)
			return cli_errorx(c, CLI_EXIT_FAIL, "the server sent a "
			    "bad file: %s", c->err.msg);
		ret = util_write_file_atomic(outs[i].path, data != NULL ?
		    (void *)data : "", len, 0644, &c->err);
		util_freezero(data, len);
		if (ret != 0)
			return cli_error(c, ret);
	}
	return CLI_EXIT_OK;
}

int
cli_remote_main(struct cli *c, const char *server, const char *cert,
    const char *key, const char *cacert, int argc, char **argv)
{
	struct est_client *ec = NULL;
	struct est_reply r;
	struct remote_out outs[REMOTE_FILES_MAX * 2];
	const struct cli_cmd *cmd;
	enum config_role role;
	const char *spec;
	json_t *req = NULL, *rep = NULL, *v;
	char *body = NULL, name[64];
	size_t nouts = 0;
	int consumed = 0, ret;

	memset(&r, 0, sizeof(r));
	memset(outs, 0, sizeof(outs));
	if ((cmd = cli_find_cmd(argc, argv, &consumed)) == NULL)
		return CLI_EXIT_USAGE;
	snprintf(name, sizeof(name), "%s%s%s", cmd->group ? cmd->group : "",
	    cmd->group ? " " : "", cmd->name);
	if (!cli_remote_rule(cmd, &role, &spec))
		return cli_errorx(c, CLI_EXIT_USAGE, "%s runs only on the "
		    "appliance, not through the admin API", name);
	if (cert == NULL || key == NULL)
		return cli_errorx(c, CLI_EXIT_USAGE, "the admin API needs the "
		    "operator's certificate and key (--cert and --key, or "
		    "[remote] cert and key)");
	if ((ret = build_request(c, spec, consumed, argc, argv, &req, outs,
	    &nouts)) != CLI_EXIT_OK)
		goto out;
	ret = CLI_EXIT_FAIL;
	if ((body = json_dumps(req, JSON_COMPACT)) == NULL) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "out of memory");
		goto out;
	}
	if (est_client_new(server, NULL, cacert, cert, key, &ec, &c->err) != 0 ||
	    est_client_set_path(ec, "/api/v1/", REMOTE_REPLY_MAX,
	    &c->err) != 0) {
		ret = cli_errorx(c, CLI_EXIT_USAGE, "%s", c->err.msg);
		goto out;
	}
	if (est_client_request(ec, "POST", "run", "application/json", body,
	    strlen(body), &r, &c->err) != 0) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "%s", c->err.msg);
		goto out;
	}
	if (r.status != 200) {
		ret = api_refusal(&r);
		goto out;
	}
	if ((rep = json_loadb((const char *)r.body, r.len, 0, NULL)) == NULL ||
	    !json_is_integer(json_object_get(rep, "exit"))) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "the server's answer is not "
		    "an admin API reply");
		goto out;
	}
	if ((v = json_object_get(rep, "stdout")) != NULL && json_is_string(v))
		print_text(stdout, json_string_value(v), outs, nouts, c->json);
	if ((v = json_object_get(rep, "stderr")) != NULL && json_is_string(v))
		print_text(stderr, json_string_value(v), outs, nouts, 0);
	ret = (int)json_integer_value(json_object_get(rep, "exit"));
	if ((v = json_object_get(rep, "files")) != NULL && json_is_object(v)) {
		int wret = write_outputs(c, v, outs, nouts);

		if (wret != CLI_EXIT_OK && ret == CLI_EXIT_OK)
			ret = wret;
	}
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = cli_errorx(c, CLI_EXIT_FAIL, "cannot write to standard "
		    "output");
out:
	for (size_t i = 0; i < nouts; i++)
		free(outs[i].path);
	est_reply_free(&r);
	est_client_free(ec);
	json_decref(rep);
	json_decref(req);
	free(body);
	return ret;
}
