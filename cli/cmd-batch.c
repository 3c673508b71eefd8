/* cmd-batch.c: hsmca batch sign --in DIR|MANIFEST --out DIR --profile NAME
 * [--jobs N] [--fail-fast]: a factory's CSRs signed in one run (lib/batch.c),
 * with progress on a terminal and one line per refusal otherwise. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hsmca/batch.h"

#include "cli.h"

/* Progress lines when stderr is not a terminal: one every this many. */
#define BATCH_LINE_SECS	10
/* Default --jobs, per core (docs/benchmarks.md: with chunked commits,
 * 4 to 16 jobs on 2 cores ran alike). */
#define BATCH_JOBS_PER_CORE	4

struct batch_ui {
	FILE	*fp;		/* progress and refusals */
	int	tty;
	int	shown;		/* a progress line is on the terminal */
	double	last_line;
};

static void
ui_clear(struct batch_ui *ui)
{
	if (ui->tty && ui->shown) {
		fputs("\r\033[K", ui->fp);
		ui->shown = 0;
	}
}

static void
ui_progress(void *arg, const struct batch_stats *s)
{
	struct batch_ui *ui = arg;
	size_t done = s->issued + s->existing + s->refused + s->failed;
	double rate = 0, eta = 0;

	if (s->sign_elapsed > 0 && s->issued + s->existing > 0) {
		rate = (double)(s->issued + s->existing) / s->sign_elapsed;
		eta = (double)(s->items - done) / rate;
	}
	if (ui->tty) {
		if (s->sign_elapsed == 0)
			fprintf(ui->fp, "\r\033[Kchecking %zu/%zu CSRs, %zu "
			    "refused", s->checked, s->items, s->refused);
		else
			fprintf(ui->fp, "\r\033[K%zu/%zu signed  %.0f/s  ETA "
			    "%d:%02d  %zu refused%s", s->issued + s->existing,
			    s->items, rate, (int)eta / 60, (int)eta % 60,
			    s->refused, s->failed > 0 ? "  FAILURES" : "");
		ui->shown = 1;
		return;
	}
	if (s->elapsed - ui->last_line < BATCH_LINE_SECS)
		return;
	ui->last_line = s->elapsed;
	fprintf(ui->fp, "batch: %zu/%zu signed, %zu refused, %zu failed, "
	    "%.0f/s\n", s->issued + s->existing, s->items, s->refused,
	    s->failed, rate);
}

static void
ui_item(void *arg, const struct batch_item *it)
{
	struct batch_ui *ui = arg;

	ui_clear(ui);
	fprintf(ui->fp, "hsmca: %s: %s: %s\n", it->device,
	    batch_status_name(it->status), it->reason != NULL ? it->reason :
	    "");
}

static int
cmd_batch_sign(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "in", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' },
		{ "profile", required_argument, NULL, 'p' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "fail-fast", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 }
	};
	struct batch_opts o;
	struct batch_ui ui;
	struct batch *b = NULL;
	struct batch_local *l = NULL;
	struct issuer *iss = NULL;
	const struct batch_stats *s;
	long long jobs;
	json_t *obj;
	int ch, ret;

	memset(&o, 0, sizeof(o));
	memset(&ui, 0, sizeof(ui));
	/* Each job waits for its chunk's two durable commits, not on a
	 * core: more jobs than cores keep the cores busy and give group
	 * commit more chunks per fsync. */
	jobs = sysconf(_SC_NPROCESSORS_ONLN);
	o.jobs = BATCH_JOBS_PER_CORE * (jobs > 0 ? (int)jobs : 1);
	while ((ch = getopt_long(argc, argv, "i:o:p:j:", opts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			o.in = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'p':
			if ((o.profile = config_profile(c->cfg, optarg)) ==
			    NULL)
				return cli_errorx(c, CLI_EXIT_NOT_FOUND,
				    "unknown profile '%s'", optarg);
			break;
		case 'j':
			if (cli_number(c, "--jobs", optarg, 1, 256, &jobs) != 0)
				return CLI_EXIT_USAGE;
			o.jobs = (int)jobs;
			break;
		case 'f':
			o.fail_fast = 1;
			break;
		default:
			return cli_usage(&cmd_batch_table[0]);
		}
	}
	if (o.in == NULL || o.out == NULL || o.profile == NULL ||
	    optind != argc)
		return cli_usage(&cmd_batch_table[0]);
	o.cfg = c->cfg;
	ui.fp = c->errout;
	ui.tty = isatty(fileno(ui.fp));
	o.tick_ms = ui.tty ? 200 : 1000;
	o.progress = ui_progress;
	o.item_done = ui_item;
	o.arg = &ui;

	if ((ret = batch_load(&b, &o, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if (c->server != NULL) {
		/* A factory station: the appliance signs, through its admin
		 * API. */
		int denied = 0;

		ret = cli_batch_remote_run(c, b, &o, &denied);
		ui_clear(&ui);
		if (ret != 0) {
			ret = cli_error(c, ret);
			if (denied)
				ret = CLI_EXIT_DENIED;
			goto out;
		}
	} else {
		if ((ret = ca_open_active(&c->ca, &iss, &c->err)) != 0 ||
		    (ret = batch_local_open(c->hsm, c->cfg->store.path, iss,
		    c->ca.actor, &l, &c->err)) != 0) {
			ret = cli_error(c, ret);
			goto out;
		}
		ret = batch_run(b, &batch_local_signer, l, &o, &c->err);
		ui_clear(&ui);
		if (ret != 0) {
			ret = cli_error(c, ret);
			goto out;
		}
	}
	s = &b->stats;
	if (c->json) {
		obj = json_object();
		json_object_set_new(obj, "batch", json_integer(b->id));
		json_object_set_new(obj, "sha256", json_string(b->sha256));
		json_object_set_new(obj, "profile",
		    json_string(o.profile->name));
		json_object_set_new(obj, "csrs", json_integer((json_int_t)
		    b->nitems));
		json_object_set_new(obj, "issued", json_integer((json_int_t)
		    s->issued));
		json_object_set_new(obj, "existing", json_integer((json_int_t)
		    s->existing));
		json_object_set_new(obj, "refused", json_integer((json_int_t)
		    s->refused));
		json_object_set_new(obj, "failed", json_integer((json_int_t)
		    s->failed));
		json_object_set_new(obj, "stopped", json_boolean(b->stopped));
		json_object_set_new(obj, "seconds", json_real(s->elapsed));
		json_object_set_new(obj, "results", json_sprintf("%s/results.csv",
		    o.out));
		out_object(c, obj, NULL);
		json_decref(obj);
	} else
		fprintf(c->out, "batch %lld: %zu CSRs, %zu signed (%zu new, %zu already "
		    "issued), %zu refused, %zu failed in %.1f s (%.0f/s); "
		    "results in %s/results.csv\n", (long long)b->id, b->nitems,
		    s->issued + s->existing, s->issued, s->existing,
		    s->refused, s->failed, s->elapsed, s->sign_elapsed > 0 ?
		    (double)(s->issued + s->existing) / s->sign_elapsed : 0,
		    o.out);
	if (b->stopped)
		fprintf(c->errout, "hsmca: stopped at the first refused CSR "
		    "(--fail-fast); nothing more was signed\n");
	if (s->failed > 0 || b->stopped)
		ret = CLI_EXIT_FAIL;
	else if (s->refused > 0)
		ret = CLI_EXIT_PARTIAL;
	else
		ret = CLI_EXIT_OK;
out:
	batch_local_close(l);
	issuer_free(iss);
	batch_free(b);
	return ret;
}

const struct cli_cmd cmd_batch_table[] = {
	{ "batch", "sign",
	  "--in DIR|MANIFEST --out DIR --profile NAME [--jobs N] [--fail-fast]",
	  "sign a factory batch of device CSRs with the active CA generation",
	  "  --in DIR|FILE    a folder of CSRs (*.csr *.pem *.der *.req, the\n"
	  "                   file name is the device id), or a manifest: CSV\n"
	  "                   device,csr[,profile] or JSON Lines\n"
	  "                   {\"device\":..,\"csr\":..,\"profile\":..}\n"
	  "  --out DIR        DEVICE.crt, DEVICE.chain.pem and results.csv\n"
	  "  --profile NAME   the profile of devices that name none\n"
	  "  --jobs N         signing threads (default: 4 per core)\n"
	  "  --fail-fast      sign nothing if any CSR is refused\n"
	  "Running the same batch again returns the certificates already\n"
	  "issued and signs only the rest (after a crash, too).\n"
	  "Exit: 0 all signed, 7 some refused (the others signed), 1 failed.\n",
	  CLI_NEED_STORE | CLI_NEED_HSM | CLI_SELF_REMOTE, cmd_batch_sign },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
