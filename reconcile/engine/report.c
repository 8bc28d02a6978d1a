/*
 * report.c -- observe and plan results as the JSON documents that
 * schemas/observe.json and schemas/plan.json describe (see report.h).
 */
#include "reconcile/engine/report.h"

#include <stdio.h>
#include <string.h>

#include "common/json.h"

int observe_json(struct buf *out, const struct obs_host *h, size_t n, const struct state *st, const char *commit)
{
	struct buf j = BUF_INIT;
	size_t i, f, k;
	int s, rc;

	buf_puts(&j, "{\"env\":");
	json_str(&j, st->env);
	buf_printf(&j, ",\"commit\":\"%s\",\"rotation\":{\"generation\":%d,\"target\":", commit,
		   st->rotation->generation);
	if (st->rotation->target)
		buf_printf(&j, "%d", st->rotation->target);
	else
		buf_puts(&j, "null");
	buf_printf(&j, ",\"phase\":\"%s\"},\"hosts\":[", spec_phase_name(st->rotation->phase));
	for (i = 0; i < n; i++) {
		buf_puts(&j, i ? ",{\"name\":" : "{\"name\":");
		json_str(&j, h[i].name);
		buf_puts(&j, ",\"address\":");
		json_str(&j, h[i].address);
		buf_printf(&j, ",\"reachable\":%s,\"error\":", h[i].reachable ? "true" : "false");
		json_str(&j, h[i].error);
		buf_puts(&j, ",\"host_key\":");
		json_str(&j, h[i].host_key);
		buf_puts(&j, ",\"fits\":[");
		for (s = 0, k = 0; s < NSTEPS; s++)
			if (h[i].phase_mask & (1u << s))
				buf_printf(&j, "%s\"%s\"", k++ ? "," : "",
					   s == STEP_STABLE_A ? "stable" : s == STEP_STABLE_B ? "stable-target"
					   : phase_step_name((enum phase_step)s));
		buf_puts(&j, "],\"files\":[");
		for (f = 0; f < h[i].nfiles; f++) {
			const struct obs_file *of = &h[i].files[f];

			buf_puts(&j, f ? ",{\"path\":" : "{\"path\":");
			json_str(&j, of->path);
			buf_printf(&j, ",\"content\":\"%s\",\"present\":%s", layout_content_name(of->content),
				   of->present ? "true" : "false");
			if (of->mode >= 0)
				buf_printf(&j, ",\"mode\":\"%04o\",\"uid\":%ld,\"gid\":%ld", (unsigned)of->mode, of->uid, of->gid);
			buf_puts(&j, ",\"problem\":");
			json_str(&j, of->problem);
			buf_puts(&j, ",\"key\":");
			json_str(&j, obs_key_name(of->key));
			buf_puts(&j, ",\"certificates\":[");
			for (k = 0; k < of->ncerts; k++) {
				const struct obs_cert *c = &of->certs[k];

				buf_printf(&j, "%s{\"generation\":", k ? "," : "");
				if (c->generation)
					buf_printf(&j, "%d,\"role\":\"%s\",\"name\":", c->generation,
						   spec_cert_role_name(c->role));
				else
					buf_puts(&j, "null,\"role\":null,\"name\":");
				json_str(&j, c->name);
				buf_puts(&j, ",\"subject\":");
				json_str(&j, c->subject);
				buf_puts(&j, ",\"issuer\":");
				json_str(&j, c->issuer);
				buf_puts(&j, ",\"fingerprint_sha256\":");
				json_str(&j, c->fingerprint);
				buf_puts(&j, ",\"not_after\":");
				json_str(&j, c->not_after);
				buf_printf(&j, ",\"days_left\":%lld}", c->days_left);
			}
			buf_puts(&j, "]}");
		}
		buf_printf(&j, "],\"seconds\":%.3f}", h[i].seconds);
	}
	buf_puts(&j, "]}\n");
	rc = j.err ? j.err : buf_put(out, j.ptr, j.len);
	buf_release(&j);
	return rc;
}

int plan_json(struct buf *j, const struct env_run *r, const struct drift_counts *dc)
{
	const struct plan *p = &r->plan;
	size_t i, k;

	buf_puts(j, "{\"env\":");
	json_str(j, r->st.env);
	buf_printf(j, ",\"commit\":\"%s\",\"live_known\":%s", r->src.commit, p->live_known ? "true" : "false");
	if (p->live_known) {
		buf_printf(j, ",\"rotation\":{\"generation\":%d,\"target\":", p->a);
		if (p->b)
			buf_printf(j, "%d", p->b);
		else
			buf_puts(j, "null");
		buf_printf(j, "},\"live\":\"%s\",\"partial\":%s,\"desired\":\"%s\"", phase_step_name(p->live),
			   p->partial ? "true" : "false", phase_step_name(p->desired));
	}
	buf_printf(j, ",\"refused\":%s,\"changes\":%zu,\"problems\":[", p->refused ? "true" : "false", p->nchanges);
	for (i = 0; i < p->nproblems; i++) {
		if (i)
			buf_puts(j, ",");
		json_str(j, p->problems[i]);
	}
	buf_puts(j, "],\"steps\":[");
	for (i = 0; i < p->nsteps; i++) {
		const struct plan_step *st = &p->steps[i];

		buf_printf(j, "%s{\"from\":\"%s\",\"to\":\"%s\",\"changes\":[", i ? "," : "", phase_step_name(st->from),
			   phase_step_name(st->to));
		for (k = 0; k < st->nchanges; k++) {
			const struct plan_change *c = &st->changes[k];

			buf_puts(j, k ? ",{\"host\":" : "{\"host\":");
			json_str(j, r->hosts[c->host].name);
			buf_puts(j, ",\"path\":");
			json_str(j, r->hosts[c->host].files[c->file].path);
			buf_printf(j, ",\"action\":\"%s\",\"from\":", c->action == PLAN_CREATE ? "create" : "change");
			json_str(j, c->from && *c->from ? c->from : NULL);
			buf_puts(j, ",\"to\":");
			json_str(j, c->to);
			buf_printf(j, ",\"mode\":\"%04o\"}", (unsigned)c->mode);
		}
		buf_puts(j, "],\"broken_pairs\":[");
		for (k = 0; k < st->nbroken; k++) {
			if (k)
				buf_puts(j, ",");
			json_str(j, st->broken[k]);
		}
		buf_puts(j, "],\"gates_not_ready\":[");
		for (k = 0; k < st->ngates; k++) {
			if (k)
				buf_puts(j, ",");
			json_str(j, st->gates[k]);
		}
		buf_puts(j, "]}");
	}
	if (dc)
		buf_printf(j, "],\"unknown_certificates\":%zu,\"expiring\":%zu,\"keys_not_matching\":%zu}\n",
			   dc->unknown, dc->expiring, dc->keys_not_matching);
	else
		buf_puts(j, "]}\n");
	return j->err;
}
