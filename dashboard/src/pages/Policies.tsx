import { useEffect, useState, type DragEvent, type FormEvent, type KeyboardEvent } from "react";
import { api, type Schemas } from "../api/client";
import { ActionNotice, ConfirmButton, DataTable, editorDone, FormButtons, useAction } from "../components/crud";
import { Badge, errorText, Load, Notice, PageHeader, Time } from "../components/ui";
import { visibilityBody, visibilityForm, whoSees, type VisibilityForm, type VisibilityView } from "../lib/access";
import { uniqueList } from "../lib/forms";
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
  const [f, setF] = useFilters({ edit: "", vis: "" });
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
                      <ConfirmButton label="Delete" what={r.name} question={`Delete ${r.name}?`} onConfirm={() => remove(r)} />
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
      <Visibility editing={f.vis} setEditing={(vis) => setF({ vis })} />
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
      <Notice text={error} kind="error" />
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
      <Notice text={error} kind="error" />
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

function Visibility({ editing, setEditing }: { editing: string; setEditing: (backend: string) => void }) {
  const { can } = useSession();
  const write = can("policies:write");
  const list = useLoad(() => api.get("/visibility"), []);
  const backends = useLoad(() => (can("backends:read") ? api.get("/backends").then((bs) => bs.map((b) => b.name)) : Promise.resolve([])), []);
  const roles = useLoad(() => (can("users:read") ? api.get("/roles").then((rs) => rs.map((r) => r.name)) : Promise.resolve([])), []);
  const action = useAction();
  const current = list.data?.items.find((v) => v.backend === editing);
  const clear = async (v: VisibilityView) => {
    if (await action.run(() => api.del("/visibility/{backend}", { params: { backend: v.backend } }), `${v.backend} is visible to everyone again.`)) {
      if (editing === v.backend) setEditing("");
      list.reload();
    }
  };
  return (
    <>
      <div className="section-head">
        <h2>Backend visibility</h2>
        {write && editing !== "new" && (
          <button type="button" onClick={() => setEditing("new")}>
            Restrict a backend
          </button>
        )}
      </div>
      <p className="muted small">A restricted backend and its tools are seen only by the listed roles and users (and admins); the others are visible to everyone.</p>
      <ActionNotice action={action} />
      {write && (editing === "new" || current) && (
        <VisibilityEditor
          key={editing}
          initial={current}
          backends={backends.data ?? []}
          roles={roles.data ?? []}
          onDone={editorDone(() => setEditing(""), action, () => list.reload())}
        />
      )}
      <Load state={list} empty={(l) => l.items.length === 0} emptyText="No restrictions: every backend is visible to everyone allowed by the rules above.">
        {(l) => (
          <DataTable
            label="Backends with restricted visibility"
            rows={l.items}
            rowKey={(v) => v.backend}
            selected={editing}
            columns={[
              { header: "Backend", cell: (v) => v.backend },
              { header: "Visible to", wrap: true, cell: (v) => whoSees(v) },
              { header: "Updated", cell: (v) => <Time iso={v.updated_at} /> },
            ]}
            actions={
              write
                ? (v) => (
                    <>
                      <button type="button" onClick={() => setEditing(v.backend)}>
                        Edit<span className="sr-only"> visibility of {v.backend}</span>
                      </button>
                      <ConfirmButton
                        label="Clear"
                        what={`restriction of ${v.backend}`}
                        question={`Make ${v.backend} visible to everyone?`}
                        disabled={action.busy}
                        onConfirm={() => clear(v)}
                      />
                    </>
                  )
                : undefined
            }
          />
        )}
      </Load>
    </>
  );
}

function VisibilityEditor(props: { initial?: VisibilityView; backends: string[]; roles: string[]; onDone: (saved?: string) => void }) {
  const { initial, backends, roles, onDone } = props;
  const [form, setForm] = useState<VisibilityForm>(visibilityForm(initial));
  const action = useAction();
  const chosen = uniqueList(form.roles);
  const toggleRole = (r: string, on: boolean) => setForm({ ...form, roles: (on ? [...chosen, r] : chosen.filter((x) => x !== r)).join(", ") });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { backend, body, error } = visibilityBody(form);
    if (!backend || !body) return action.fail(error ?? "Check the form.");
    if (await action.run(() => api.put("/visibility/{backend}", body, { params: { backend } }))) onDone(`Restricted ${backend} to ${whoSees({ restricted: true, roles: body.roles ?? [], users: body.users ?? [] })}.`);
  };
  const title = initial ? `Edit visibility of ${initial.backend}` : "Restrict a backend";
  return (
    <form className="card form" onSubmit={submit} aria-label={title}>
      <h3>{title}</h3>
      <div className="grid2">
        {backends.length && !initial ? (
          <label>
            Backend
            <select required value={form.backend} onChange={(e) => setForm({ ...form, backend: e.target.value })}>
              <option value="">Choose a backend</option>
              {backends.map((b) => (
                <option key={b}>{b}</option>
              ))}
            </select>
          </label>
        ) : (
          <label>
            Backend
            <input required value={form.backend} disabled={!!initial} onChange={(e) => setForm({ ...form, backend: e.target.value })} />
          </label>
        )}
        <label>
          Users <span className="muted small">(usernames, comma-separated)</span>
          <input value={form.users} onChange={(e) => setForm({ ...form, users: e.target.value })} />
        </label>
        {roles.length ? (
          <fieldset>
            <legend>Roles</legend>
            {[...new Set([...roles, ...chosen])].map((r) => (
              <label key={r} className="check">
                <input type="checkbox" checked={chosen.includes(r)} onChange={(e) => toggleRole(r, e.target.checked)} /> {r}
              </label>
            ))}
          </fieldset>
        ) : (
          <label>
            Roles <span className="muted small">(comma-separated)</span>
            <input value={form.roles} onChange={(e) => setForm({ ...form, roles: e.target.value })} />
          </label>
        )}
      </div>
      <p className="muted small">With no role and no user, only admins see the backend.</p>
      <ActionNotice action={action} />
      <FormButtons busy={action.busy} submit="Save visibility" onCancel={() => onDone()} />
    </form>
  );
}
