import { useEffect, useState } from "react";
import { api, type Schemas } from "../api/client";
import { Badge, errorText, Load, Notice, PageHeader } from "../components/ui";
import { apiQuery } from "../lib/query";
import { useDebounced, useFilters, useLoad } from "../lib/hooks";
import { Link } from "../lib/router";
import { useSession } from "../session";

type Tool = Schemas["ToolItem"];

const SPEC = { q: "", backend: "", risk: "", enabled: "", status: "" };

export default function Tools() {
  const { can } = useSession();
  const [f, setF] = useFilters(SPEC);
  const [text, setText] = useState(f.q);
  const q = useDebounced(text, 200);
  useEffect(() => {
    if (q !== f.q) setF({ q });
    // Only when the typed text settles.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q]);
  const query = apiQuery(f) as Record<string, string>;
  const list = useLoad(
    () =>
      api.get("/tools", {
        query: {
          ...query,
          enabled: f.enabled === "" ? undefined : f.enabled === "true",
          risk: (f.risk || undefined) as Schemas["Risk"] | undefined,
          status: (f.status || undefined) as Schemas["ToolStatus"] | undefined,
        },
      }),
    [f.q, f.backend, f.risk, f.enabled, f.status],
  );
  const backends = useLoad(() => (can("backends:read") ? api.get("/backends") : Promise.resolve([])), []);
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const write = can("tools:write");

  const patch = async (t: Tool, body: Schemas["ToolPatch"]) => {
    try {
      await api.patch("/tools/{id}", body, { params: { id: t.id } });
      setNotice({ text: `${t.exposed_name}: ${body.enabled === undefined ? `risk ${body.risk ?? "automatic"}` : body.enabled ? "enabled" : "disabled"}.`, kind: "ok" });
      list.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  const approve = async (t: Tool) => {
    try {
      await api.post("/tools/{id}/approve", undefined, { params: { id: t.id } });
      setNotice({ text: `Approved the new definition of ${t.exposed_name}.`, kind: "ok" });
      list.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  return (
    <section>
      <PageHeader title="Tools" />
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search
          <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="name or description" />
        </label>
        <label>
          Backend
          <select value={f.backend} onChange={(e) => setF({ backend: e.target.value })}>
            <option value="">any</option>
            {(backends.data ?? []).map((b) => (
              <option key={b.name}>{b.name}</option>
            ))}
            {f.backend && !(backends.data ?? []).some((b) => b.name === f.backend) && <option>{f.backend}</option>}
          </select>
        </label>
        <label>
          Risk
          <select value={f.risk} onChange={(e) => setF({ risk: e.target.value })}>
            <option value="">any</option>
            <option>low</option>
            <option>medium</option>
            <option>high</option>
          </select>
        </label>
        <label>
          State
          <select value={f.enabled} onChange={(e) => setF({ enabled: e.target.value })}>
            <option value="">any</option>
            <option value="true">enabled</option>
            <option value="false">disabled</option>
          </select>
        </label>
        <label>
          Definition
          <select value={f.status} onChange={(e) => setF({ status: e.target.value })}>
            <option value="">any</option>
            <option value="changed">changed (needs approval)</option>
            <option value="ok">unchanged</option>
          </select>
        </label>
      </form>
      <Notice {...(notice ?? { kind: "ok" })} />
      <Load state={list} empty={(l) => l.items.length === 0} emptyText="No tools match. Tools appear here once a backend lists them.">
        {(l) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Tool</th>
                  <th scope="col">Risk</th>
                  <th scope="col">Backend / agent</th>
                  <th scope="col">Enabled</th>
                  <th scope="col">Who may call it</th>
                  <th scope="col">Definition</th>
                </tr>
              </thead>
              <tbody>
                {l.items.map((t) => (
                  <tr key={t.id} data-tool={t.exposed_name}>
                    <td>
                      <strong>{t.exposed_name}</strong>
                      {t.description && <div className="muted small clamp">{t.description}</div>}
                    </td>
                    <td>
                      <Badge kind={`risk-${t.risk}`}>{t.risk}</Badge>
                      {write && (
                        <select
                          aria-label={`Risk of ${t.exposed_name}`}
                          className="small"
                          value={t.risk_override ?? ""}
                          onChange={(e) => patch(t, { risk: (e.target.value || null) as Schemas["Risk"] | null })}
                        >
                          <option value="">auto ({t.risk_auto})</option>
                          <option value="low">low</option>
                          <option value="medium">medium</option>
                          <option value="high">high</option>
                        </select>
                      )}
                    </td>
                    <td>
                      <Link href={`/tools?backend=${encodeURIComponent(t.backend)}`}>{t.backend}</Link>
                      {t.agent && <div className="muted small">agent {t.agent}</div>}
                    </td>
                    <td>
                      <label className="switch">
                        <input
                          type="checkbox"
                          role="switch"
                          checked={t.enabled}
                          disabled={!write}
                          aria-label={`${t.exposed_name} enabled`}
                          onChange={(e) => patch(t, { enabled: e.target.checked })}
                        />
                        <span>{t.enabled ? "on" : "off"}</span>
                      </label>
                    </td>
                    <td className="small">{can("policies:read") ? <WhoMay tool={t} /> : "—"}</td>
                    <td>
                      {t.status === "changed" ? (
                        <>
                          <Badge kind="changed">{t.held ? "changed, held" : "changed"}</Badge>
                          {write && (
                            <button type="button" onClick={() => approve(t)}>
                              Approve<span className="sr-only"> {t.exposed_name}</span>
                            </button>
                          )}
                        </>
                      ) : (
                        <span className="muted">pinned</span>
                      )}
                    </td>
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

/** The users who may call `tool`, asked of the hub when the row is opened. */
function WhoMay({ tool }: { tool: Tool }) {
  const [access, setAccess] = useState<Schemas["ToolAccess"]>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const load = async () => {
    setBusy(true);
    setError(undefined);
    try {
      setAccess(await api.get("/tools/{id}/access", { params: { id: tool.id } }));
    } catch (e) {
      setError(errorText(e));
    }
    setBusy(false);
  };
  if (error) return <span className="error">{error}</span>;
  if (!access)
    return (
      <button type="button" className="small" onClick={load} disabled={busy}>
        {busy ? "Checking…" : "Show"}
        <span className="sr-only"> who may call {tool.exposed_name}</span>
      </button>
    );
  const allowed = access.users.filter((u) => u.allowed);
  return (
    <details>
      <summary>
        {allowed.length} of {access.users.length}
        {access.truncated ? "+" : ""} users{!access.callable && " (tool off)"}
      </summary>
      <ul className="plain">
        {access.users.map((u) => (
          <li key={u.username} title={u.reason}>
            <Badge kind={u.allowed ? "allow" : "deny"}>{u.allowed ? "may" : "may not"}</Badge> {u.username}{" "}
            <span className="muted">
              ({u.role}
              {u.rule ? `, rule ${u.rule}` : ""})
            </span>
          </li>
        ))}
      </ul>
    </details>
  );
}
