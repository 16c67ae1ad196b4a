import { useState, type FormEvent } from "react";
import { api, type Schemas } from "../api/client";
import { Badge, errorText, Load, Notice, PageHeader } from "../components/ui";
import { useLoad } from "../lib/hooks";
import { useSession } from "../session";

export default function Limits() {
  const { can, info } = useSession();
  const rules = useLoad(() => api.get("/limits"), []);
  const stats = useLoad(() => (can("audit:read") ? api.get("/audit/stats") : Promise.resolve(undefined)), []);
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const write = can("limits:write");
  const act = async (text: string, f: () => Promise<unknown>) => {
    try {
      await f();
      setNotice({ text, kind: "ok" });
      rules.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  return (
    <section>
      <PageHeader title="Limits & settings" />
      <Notice {...(notice ?? { kind: "ok" })} />
      <h2>Rate limits</h2>
      {write && <NewLimit onCreate={(r) => act("Limit added.", () => api.post("/limits", r))} />}
      <Load state={rules} empty={(l) => l.length === 0} emptyText="No rate limits.">
        {(list) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Scope</th>
                  <th scope="col">Match</th>
                  <th scope="col" className="num">
                    Max requests
                  </th>
                  <th scope="col">Per</th>
                  <th scope="col">State</th>
                  <th scope="col">Source</th>
                  {write && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {list.map((r: Schemas["LimitRule"]) => (
                  <tr key={r.id}>
                    <td>{r.scope}</td>
                    <td>{r.match ?? <span className="muted">each</span>}</td>
                    <td className="num">{r.unit === "tokens" ? `${r.max_tokens ?? 0} tokens` : r.max_requests}</td>
                    <td>{r.window}</td>
                    <td>{r.enabled ? <Badge kind="ready">on</Badge> : <Badge kind="idle">off</Badge>}</td>
                    <td>{r.source}</td>
                    {write && (
                      <td>
                        {r.source === "runtime" && (
                          <button type="button" className="danger" onClick={() => act("Limit removed.", () => api.del("/limits/{id}", { params: { id: r.id } }))}>
                            Remove<span className="sr-only"> limit {r.id}</span>
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Load>
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

function NewLimit({ onCreate }: { onCreate: (r: Schemas["NewLimitRule"]) => void }) {
  const [scope, setScope] = useState<Schemas["Scope"]>("user");
  const [match, setMatch] = useState("");
  const [max, setMax] = useState("60");
  const [window, setWindow] = useState<Schemas["Window"]>("minute");
  return (
    <form
      className="card inline-form"
      aria-label="Add a rate limit"
      onSubmit={(e) => {
        e.preventDefault();
        onCreate({ scope, match: match.trim() || null, max_requests: Number(max), window, enabled: true });
      }}
    >
      <label>
        Scope
        <select value={scope} onChange={(e) => setScope(e.target.value as Schemas["Scope"])}>
          <option>user</option>
          <option>key</option>
          <option>backend</option>
          <option>tool</option>
        </select>
      </label>
      <label>
        Match (empty: each one)
        <input value={match} onChange={(e) => setMatch(e.target.value)} />
      </label>
      <label>
        Max requests
        <input type="number" min={1} required value={max} onChange={(e) => setMax(e.target.value)} />
      </label>
      <label>
        Per
        <select value={window} onChange={(e) => setWindow(e.target.value as Schemas["Window"])}>
          <option>minute</option>
          <option>hour</option>
          <option>day</option>
        </select>
      </label>
      <button type="submit" className="primary">
        Add limit
      </button>
    </form>
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
