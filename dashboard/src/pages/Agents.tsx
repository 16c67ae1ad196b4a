import { useEffect, useState, type FormEvent } from "react";
import { api, type Schemas } from "../api/client";
import { ConfirmButton } from "../components/crud";
import { Badge, errorText, Load, Notice, PageHeader, Snippet, Time } from "../components/ui";
import { useFilters, useLoad } from "../lib/hooks";
import { Link } from "../lib/router";
import { useSession } from "../session";

const REFRESH_MS = 5_000;

export default function Agents() {
  const { can, me } = useSession();
  const [f, setF] = useFilters({ show: "active" });
  const list = useLoad(() => api.get("/agents"), []);
  const tools = useLoad(() => api.get("/tools", { query: {} }), []);
  const [enrolled, setEnrolled] = useState<Schemas["Enrolled"]>();
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const manage = can("agents:write") || can("keys:own");
  const { reload } = list;
  useEffect(() => {
    const t = setInterval(reload, REFRESH_MS);
    return () => clearInterval(t);
  }, [reload]);
  const revoke = async (name: string) => {
    try {
      await api.del("/agents/{name}", { params: { name } });
      setNotice({ text: `Revoked ${name}.`, kind: "ok" });
      list.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  const serversOf = (agent: string) => [...new Set((tools.data?.items ?? []).filter((t) => t.agent === agent).map((t) => t.backend))];
  return (
    <section>
      <PageHeader title="Agents">
        <label className="inline">
          Show
          <select value={f.show} onChange={(e) => setF({ show: e.target.value })}>
            <option value="active">active</option>
            <option value="all">all, revoked included</option>
          </select>
        </label>
      </PageHeader>
      <Notice {...(notice ?? { kind: "ok" })} />
      {manage && <Enroll owner={me.username} onEnrolled={(e) => { setEnrolled(e); list.reload(); }} />}
      {enrolled && (
        <div className="card" aria-live="polite">
          <h2>Install {enrolled.agent.name}</h2>
          <p>Run this on the machine the agent serves. The token is shown only now.</p>
          <Snippet text={enrolled.install_command} label="install command" />
          <p className="muted small">
            Or set it up by hand: <code>gateway-agent setup --hub URL --name {enrolled.agent.name} --non-interactive --token-stdin</code> and paste the token.
          </p>
          <button type="button" onClick={() => setEnrolled(undefined)}>
            Done
          </button>
        </div>
      )}
      <Load state={list} empty={(l) => l.filter((a) => f.show === "all" || !a.revoked_at).length === 0} emptyText="No agents enrolled yet.">
        {(agents) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Agent</th>
                  <th scope="col">Status</th>
                  <th scope="col">Servers</th>
                  <th scope="col">Last seen</th>
                  <th scope="col">Version</th>
                  <th scope="col">Owner</th>
                  {manage && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {agents
                  .filter((a) => f.show === "all" || !a.revoked_at)
                  .map((a) => (
                    <tr key={a.name + a.created_at} data-agent={a.name}>
                      <td>{a.name}</td>
                      <td>{a.revoked_at ? <Badge kind="down">revoked</Badge> : a.online ? <Badge kind="ready">online</Badge> : <Badge kind="idle">offline</Badge>}</td>
                      <td>
                        {serversOf(a.name).map((s) => (
                          <Link key={s} href={`/tools?backend=${encodeURIComponent(s)}`} className="tag">
                            {s}
                          </Link>
                        ))}
                      </td>
                      <td>
                        <Time iso={a.last_seen} />
                      </td>
                      <td>{a.version ?? "—"}</td>
                      <td>{a.owner}</td>
                      {manage && (
                        <td>
                          {!a.revoked_at && (
                            <ConfirmButton
                              label="Revoke"
                              what={a.name}
                              question={`Revoke ${a.name}? It is disconnected at once and its token stops working.`}
                              onConfirm={() => revoke(a.name)}
                            />
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
    </section>
  );
}

function Enroll({ owner, onEnrolled }: { owner: string; onEnrolled: (e: Schemas["Enrolled"]) => void }) {
  const [name, setName] = useState("");
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      onEnrolled(await api.post("/agents", { name: name.trim() }));
      setName("");
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-label="Enroll an agent">
      <label>
        New agent name
        <input required value={name} pattern="[A-Za-z0-9][A-Za-z0-9_-]{0,31}" placeholder={`${owner}-laptop`} onChange={(e) => setName(e.target.value)} />
      </label>
      <button type="submit" className="primary">
        Enroll agent
      </button>
      <Notice text={error} kind="error" />
    </form>
  );
}
