import { useState, type FormEvent } from "react";
import { api } from "../api/client";
import { ActionNotice, ConfirmButton, DataTable, editorDone, FormButtons, useAction } from "../components/crud";
import { Badge, errorText, Load, Notice, PageHeader } from "../components/ui";
import { useDebounced, useFilters, useLoad } from "../lib/hooks";
import { apiQuery } from "../lib/query";
import { limitBody, limitForm, maxText, usedPercent, type LimitForm, type LimitRule } from "../lib/limits";
import { useSession } from "../session";

export default function Limits() {
  const { can, info, me } = useSession();
  const [f, setF] = useFilters({ edit: "", user: me.username, key: "", backend: "", tool: "" });
  const rules = useLoad(() => api.get("/limits"), []);
  const stats = useLoad(() => (can("audit:read") ? api.get("/audit/stats") : Promise.resolve(undefined)), []);
  const action = useAction();
  const write = can("limits:write");
  const current = rules.data?.find((r) => r.id === f.edit && r.source === "runtime");
  const remove = async (r: LimitRule) => {
    if (await action.run(() => api.del("/limits/{id}", { params: { id: r.id } }), "Limit removed.")) {
      if (f.edit === r.id) setF({ edit: "" });
      rules.reload();
    }
  };
  return (
    <section>
      <PageHeader title="Limits & settings" />
      <div className="section-head">
        <h2>Rate limits</h2>
        {write && f.edit !== "new" && (
          <button type="button" onClick={() => setF({ edit: "new" })}>
            Add limit
          </button>
        )}
      </div>
      <p className="muted small">A rule counts requests, or tokens (AI API only), per subject over a sliding window.</p>
      <ActionNotice action={action} />
      {write && (f.edit === "new" || current) && (
        <LimitEditor
          key={f.edit}
          initial={current}
          onDone={editorDone(() => setF({ edit: "" }), action, () => rules.reload())}
        />
      )}
      <Load state={rules} empty={(l) => l.length === 0} emptyText="No rate limits.">
        {(list) => (
          <DataTable
            label="Rate limit rules"
            rows={list}
            rowKey={(r) => r.id}
            selected={f.edit}
            columns={[
              { header: "Scope", cell: (r) => r.scope },
              { header: "Match", cell: (r) => r.match ?? <span className="muted">each</span> },
              { header: "Maximum", num: true, cell: (r) => maxText(r) },
              { header: "Per", cell: (r) => r.window },
              { header: "State", cell: (r) => (r.enabled ? <Badge kind="ready">on</Badge> : <Badge kind="idle">off</Badge>) },
              { header: "Source", cell: (r) => r.source },
            ]}
            actions={
              write
                ? (r) =>
                    r.source === "runtime" ? (
                      <>
                        <button type="button" onClick={() => setF({ edit: r.id })}>
                          Edit<span className="sr-only"> limit {r.id}</span>
                        </button>
                        <ConfirmButton label="Remove" what={`limit ${r.id}`} question="Remove this limit?" disabled={action.busy} onConfirm={() => remove(r)} />
                      </>
                    ) : (
                      <span className="muted small">config file</span>
                    )
                : undefined
            }
          />
        )}
      </Load>
      <Status filters={f} setFilters={setF} />
      <h2>Hub</h2>
      <dl className="facts card">
        <dt>Version</dt>
        <dd>{info.version}</dd>
        <dt>Public URL</dt>
        <dd>
          <code>{info.public_url}</code>
        </dd>
        {stats.data && (
          <>
            <dt>Audit queue</dt>
            <dd>
              {stats.data.queue_depth} / {stats.data.queue_capacity} · {stats.data.written} written · {stats.data.dropped} dropped · {stats.data.write_errors} write errors
            </dd>
          </>
        )}
      </dl>
      <ChangePassword />
    </section>
  );
}

function LimitEditor({ initial, onDone }: { initial?: LimitRule; onDone: (saved?: string) => void }) {
  const [form, setForm] = useState<LimitForm>(limitForm(initial));
  const set = <K extends keyof LimitForm>(k: K, v: LimitForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { body, error } = limitBody(form);
    if (!body) return action.fail(error ?? "Check the form.");
    const ok = await action.run(() => (initial ? api.put("/limits/{id}", body, { params: { id: initial.id } }) : api.post("/limits", body)));
    if (ok) onDone(initial ? "Limit saved; its counters start over." : "Limit added.");
  };
  const title = initial ? `Edit limit ${initial.id}` : "Add a rate limit";
  return (
    <form className="card form" onSubmit={submit} aria-label={title}>
      <h3>{title}</h3>
      <div className="grid3">
        <label>
          Scope
          <select value={form.scope} onChange={(e) => set("scope", e.target.value as LimitForm["scope"])}>
            <option value="user">user</option>
            <option value="key">key</option>
            <option value="backend">backend</option>
            <option value="tool">tool</option>
          </select>
        </label>
        <label>
          Match <span className="muted small">(a username, key id, backend or tool glob; blank: each one)</span>
          <input value={form.match} onChange={(e) => set("match", e.target.value)} />
        </label>
        <label>
          Counts
          <select value={form.unit} onChange={(e) => set("unit", e.target.value as LimitForm["unit"])}>
            <option value="requests">requests</option>
            <option value="tokens">tokens (AI API)</option>
          </select>
        </label>
        <label>
          {form.unit === "tokens" ? "Max tokens" : "Max requests"}
          <input type="number" min={1} required value={form.max} onChange={(e) => set("max", e.target.value)} />
        </label>
        <label>
          Per
          <select value={form.window} onChange={(e) => set("window", e.target.value as LimitForm["window"])}>
            <option value="minute">minute</option>
            <option value="hour">hour</option>
            <option value="day">day</option>
          </select>
        </label>
        <label className="check">
          <input type="checkbox" checked={form.enabled} onChange={(e) => set("enabled", e.target.checked)} /> Enabled
        </label>
      </div>
      <ActionNotice action={action} />
      <FormButtons busy={action.busy} submit={initial ? "Save limit" : "Add limit"} onCancel={() => onDone()} />
    </form>
  );
}

type StatusFilters = { user: string; key: string; backend: string; tool: string };

/** Where a subject stands against the rules that apply to it, now. */
function Status({ filters, setFilters }: { filters: StatusFilters; setFilters: (f: Partial<StatusFilters>) => void }) {
  // Settled text, so typing does not send a request per key.
  const settled = useDebounced(JSON.stringify(apiQuery({ user: filters.user, key: filters.key, backend: filters.backend, tool: filters.tool })), 300);
  const status = useLoad(() => api.get("/limits/status", { query: JSON.parse(settled) as Partial<StatusFilters> }), [settled]);
  return (
    <>
      <h2>Current usage</h2>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Usage of a subject">
        <label>
          User
          <input value={filters.user} onChange={(e) => setFilters({ user: e.target.value })} />
        </label>
        <label>
          Key id
          <input value={filters.key} onChange={(e) => setFilters({ key: e.target.value })} />
        </label>
        <label>
          Backend
          <input value={filters.backend} onChange={(e) => setFilters({ backend: e.target.value })} />
        </label>
        <label>
          Tool <span className="muted small">(backend__tool)</span>
          <input value={filters.tool} onChange={(e) => setFilters({ tool: e.target.value })} />
        </label>
      </form>
      <Load state={status} empty={(s) => s.length === 0} emptyText="No enabled rule applies to this subject.">
        {(rows) => (
          <DataTable
            label="Current counts against the rules"
            rows={rows}
            rowKey={(s) => `${s.rule_id}/${s.subject}`}
            columns={[
              { header: "Rule", cell: (s) => <code>{s.rule_id}</code> },
              { header: "Scope", cell: (s) => s.scope },
              { header: "Subject", cell: (s) => s.subject },
              {
                header: "Used",
                cell: (s) => (
                  <>
                    <progress max={100} value={usedPercent(s)} aria-label={`${s.rule_id}: ${usedPercent(s)} % used`} /> {usedPercent(s)} %
                  </>
                ),
              },
              { header: "Count", num: true, cell: (s) => `${s.count} / ${s.max} ${s.unit}` },
              { header: "Remaining", num: true, cell: (s) => s.remaining },
              { header: "Per", cell: (s) => s.window },
            ]}
          />
        )}
      </Load>
    </>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api.post("/auth/password", { current_password: current, new_password: next });
      setNotice({ text: "Password changed; your other sessions were signed out.", kind: "ok" });
      setCurrent("");
      setNext("");
    } catch (err) {
      setNotice({ text: errorText(err), kind: "error" });
    }
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-label="Change your password">
      <label>
        Current password
        <input type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />
      </label>
      <label>
        New password (12+ characters)
        <input type="password" autoComplete="new-password" required minLength={12} value={next} onChange={(e) => setNext(e.target.value)} />
      </label>
      <button type="submit">Change password</button>
      <Notice {...(notice ?? { kind: "ok" })} />
    </form>
  );
}
