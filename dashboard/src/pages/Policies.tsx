import { useEffect, useState, type DragEvent, type FormEvent, type KeyboardEvent } from "react";
import { api, type Schemas } from "../api/client";
import { Badge, errorText, Load, Notice, PageHeader } from "../components/ui";
import { useFilters, useLoad } from "../lib/hooks";
import { emptyForm, LIST_FIELDS, move, moveBy, sameOrder, summary, toBody, toForm, type Rule, type RuleForm } from "../lib/rules";
import { useSession } from "../session";

const FIELD_LABELS: Record<(typeof LIST_FIELDS)[number], string> = {
  roles: "Roles",
  users: "Users",
  keys: "Key ids",
  agents: "Agents",
  client_apps: "Client apps",
  backends: "Backends",
  tools: "Tools (globs)",
};

export default function Policies() {
  const { can } = useSession();
  const write = can("policies:write");
  const [f, setF] = useFilters({ edit: "" });
  const list = useLoad(() => api.get("/policies"), []);
  const [order, setOrder] = useState<Rule[]>([]);
  const [dragging, setDragging] = useState<number>();
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const [announce, setAnnounce] = useState("");
  useEffect(() => setOrder(list.data?.items ?? []), [list.data]);
  const dirty = list.data ? !sameOrder(order, list.data.items) : false;

  const saveOrder = async () => {
    try {
      const r = await api.post("/policies/reorder", { ids: order.map((r) => r.id) });
      list.set(() => r);
      setNotice({ text: "Order saved: rules are evaluated top to bottom.", kind: "ok" });
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  const keyMove = (e: KeyboardEvent, r: Rule) => {
    if (!write || !e.altKey || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
    e.preventDefault();
    const next = moveBy(order, r.id, e.key === "ArrowUp" ? -1 : 1);
    setOrder(next);
    setAnnounce(`${r.name} moved to position ${next.findIndex((x) => x.id === r.id) + 1} of ${next.length}`);
    // Keep focus on the moved row.
    requestAnimationFrame(() => document.getElementById(`rule-${r.id}`)?.focus());
  };
  const drop = (e: DragEvent, to: number) => {
    e.preventDefault();
    if (dragging === undefined) return;
    setOrder(move(order, dragging, to));
    setDragging(undefined);
  };
  const remove = async (r: Rule) => {
    if (!window.confirm(`Delete rule ${r.name}?`)) return;
    try {
      await api.del("/policies/{id}", { params: { id: r.id } });
      setNotice({ text: `Deleted ${r.name}.`, kind: "ok" });
      list.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  const editing = f.edit === "new" ? undefined : order.find((r) => r.id === f.edit);

  return (
    <section>
      <PageHeader title="Policies">
        {write && (
          <button type="button" className="primary" onClick={() => setF({ edit: "new" })}>
            New rule
          </button>
        )}
      </PageHeader>
      <p className="muted">
        Rules are checked top to bottom; the first that matches decides. {write && "Drag a rule, or focus it and press Alt+↑ / Alt+↓, then save the order."}
      </p>
      <Notice {...(notice ?? { kind: "ok" })} />
      <p className="sr-only" aria-live="assertive">
        {announce}
      </p>
      {(f.edit === "new" || editing) && write && (
        <RuleEditor
          key={f.edit}
          rule={editing}
          onDone={(text) => {
            setF({ edit: "" });
            if (text) {
              setNotice({ text, kind: "ok" });
              list.reload();
            }
          }}
        />
      )}
      <Load state={list} empty={(l) => l.items.length === 0} emptyText="No rules: every call is allowed unless a backend is covered by a rule.">
        {() => (
          <>
            <ol className="rules" aria-label="Policy rules in evaluation order">
              {order.map((r, i) => (
                <li
                  key={r.id}
                  id={`rule-${r.id}`}
                  tabIndex={0}
                  draggable={write}
                  aria-label={`${i + 1}. ${r.name}: ${r.effect} ${summary(r)}${r.enabled ? "" : " (disabled)"}`}
                  className={`rule${dragging === i ? " dragging" : ""}${r.enabled ? "" : " disabled"}`}
                  onDragStart={() => setDragging(i)}
                  onDragOver={(e) => e.preventDefault()}
                  onDrop={(e) => drop(e, i)}
                  onDragEnd={() => setDragging(undefined)}
                  onKeyDown={(e) => keyMove(e, r)}
                >
                  {write && (
                    <span className="grip" aria-hidden="true">
                      ⋮⋮
                    </span>
                  )}
                  <span className="pos">{i + 1}</span>
                  <Badge kind={r.effect}>{r.effect}</Badge>
                  <span className="rule-main">
                    <strong>{r.name}</strong> {!r.enabled && <Badge kind="idle">disabled</Badge>}
                    <span className="muted small block">{summary(r)}</span>
                  </span>
                  {write && (
                    <span className="rule-actions">
                      <button type="button" aria-label={`Move ${r.name} up`} disabled={i === 0} onClick={() => setOrder(moveBy(order, r.id, -1))}>
                        ↑
                      </button>
                      <button type="button" aria-label={`Move ${r.name} down`} disabled={i === order.length - 1} onClick={() => setOrder(moveBy(order, r.id, 1))}>
                        ↓
                      </button>
                      <button type="button" onClick={() => setF({ edit: r.id })}>
                        Edit<span className="sr-only"> {r.name}</span>
                      </button>
                      <button type="button" className="danger" onClick={() => remove(r)}>
                        Delete<span className="sr-only"> {r.name}</span>
                      </button>
                    </span>
                  )}
                </li>
              ))}
            </ol>
            {dirty && (
              <div className="actions">
                <button type="button" className="primary" onClick={saveOrder}>
                  Save order
                </button>
                <button type="button" onClick={() => setOrder(list.data?.items ?? [])}>
                  Undo
                </button>
              </div>
            )}
          </>
        )}
      </Load>
      <Simulator />
    </section>
  );
}

function RuleEditor({ rule, onDone }: { rule?: Rule; onDone: (saved?: string) => void }) {
  const [form, setForm] = useState<RuleForm>(rule ? toForm(rule) : emptyForm());
  const [error, setError] = useState<string>();
  const set = <K extends keyof RuleForm>(k: K, v: RuleForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { body, error } = toBody(form);
    if (!body) return setError(error);
    try {
      if (rule) await api.put("/policies/{id}", body, { params: { id: rule.id } });
      else await api.post("/policies", body);
      onDone(`Saved rule ${body.name}.`);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card form" onSubmit={submit} aria-label={rule ? `Edit rule ${rule.name}` : "New rule"}>
      <h2>{rule ? `Edit ${rule.name}` : "New rule"}</h2>
      <div className="grid2">
        <label>
          Name
          <input required value={form.name} onChange={(e) => set("name", e.target.value)} />
        </label>
        <label>
          Effect
          <select value={form.effect} onChange={(e) => set("effect", e.target.value as RuleForm["effect"])}>
            <option value="allow">allow</option>
            <option value="deny">deny</option>
          </select>
        </label>
        <label className="span2">
          Description
          <input value={form.description} onChange={(e) => set("description", e.target.value)} />
        </label>
        {LIST_FIELDS.map((k) => (
          <label key={k}>
            {FIELD_LABELS[k]} <span className="muted small">(comma-separated; empty matches any)</span>
            <input value={form[k]} onChange={(e) => set(k, e.target.value)} />
          </label>
        ))}
        <fieldset>
          <legend>Risks (none checked: any)</legend>
          {(["low", "medium", "high"] as const).map((risk) => (
            <label key={risk} className="check">
              <input
                type="checkbox"
                checked={form.risks.includes(risk)}
                onChange={(e) => set("risks", e.target.checked ? [...form.risks, risk] : form.risks.filter((x) => x !== risk))}
              />{" "}
              {risk}
            </label>
          ))}
        </fieldset>
        <label className="check">
          <input type="checkbox" checked={form.enabled} onChange={(e) => set("enabled", e.target.checked)} /> Enabled
        </label>
      </div>
      {error && (
        <p className="notice error" role="alert">
          {error}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="primary">
          Save rule
        </button>
        <button type="button" onClick={() => onDone()}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function Simulator() {
  const [f, setF] = useFilters({ sim_user: "", sim_backend: "", sim_tool: "", sim_key: "", sim_agent: "", sim_client: "" });
  const [result, setResult] = useState<Schemas["SimulateResult"]>();
  const [error, setError] = useState<string>();
  const run = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      setResult(
        await api.post("/policies/simulate", {
          username: f.sim_user,
          backend: f.sim_backend,
          tool: f.sim_tool,
          key_id: f.sim_key || null,
          agent: f.sim_agent || null,
          client_app: f.sim_client || null,
        }),
      );
    } catch (err) {
      setResult(undefined);
      setError(errorText(err));
    }
  };
  return (
    <form className="card form" onSubmit={run} aria-labelledby="sim-title">
      <h2 id="sim-title">Simulator</h2>
      <p className="muted">Would this call be allowed, and by which rule?</p>
      <div className="grid3">
        <label>
          User
          <input required value={f.sim_user} onChange={(e) => setF({ sim_user: e.target.value })} />
        </label>
        <label>
          Backend
          <input required value={f.sim_backend} onChange={(e) => setF({ sim_backend: e.target.value })} />
        </label>
        <label>
          Tool (its name on the backend)
          <input required value={f.sim_tool} onChange={(e) => setF({ sim_tool: e.target.value })} />
        </label>
        <label>
          Key id
          <input value={f.sim_key} onChange={(e) => setF({ sim_key: e.target.value })} />
        </label>
        <label>
          Agent
          <input value={f.sim_agent} onChange={(e) => setF({ sim_agent: e.target.value })} />
        </label>
        <label>
          Client app
          <input value={f.sim_client} onChange={(e) => setF({ sim_client: e.target.value })} />
        </label>
      </div>
      <button type="submit" className="primary">
        Simulate
      </button>
      {error && (
        <p className="notice error" role="alert">
          {error}
        </p>
      )}
      {result && (
        <div className={`notice ${result.allowed ? "ok" : "error"}`} role="status">
          <strong>{result.allowed ? "Allowed" : "Refused"}</strong>
          {result.rule ? ` by rule ${result.rule.position}. ${result.rule.name}` : ""}: {result.reason} (risk {result.risk})
          <ul className="small">
            <li>backend visible: {String(result.checks.backend_visible)}</li>
            <li>tool known: {String(result.checks.tool_known)}</li>
            <li>tool enabled: {String(result.checks.tool_enabled)}</li>
            <li>held for approval: {String(result.checks.tool_held)}</li>
            <li>key allows: {String(result.checks.key_allows)}</li>
          </ul>
        </div>
      )}
    </form>
  );
}
