import { useState, type FormEvent } from "react";
import { api, type Schemas } from "../api/client";
import { ConfirmButton } from "../components/crud";
import { Badge, errorText, Load, Notice, PageHeader, Time } from "../components/ui";
import { useFilters, useLoad } from "../lib/hooks";
import { formatKv, parseKv } from "../lib/kv";
import { Link } from "../lib/router";
import { useSession } from "../session";

type Info = Schemas["BackendInfo"];
type Def = Schemas["BackendDefinition"];

export default function Backends() {
  const { can } = useSession();
  const [f, setF] = useFilters({ name: "", add: "" });
  const list = useLoad(() => api.get("/backends"), []);
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const write = can("backends:write");
  const selected = list.data?.find((b) => b.name === f.name);
  const remove = async (b: Info) => {
    try {
      await api.del("/backends/{name}", { params: { name: b.name } });
      setNotice({ text: `Removed ${b.name}.`, kind: "ok" });
      setF({ name: "" });
      list.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  return (
    <section>
      <PageHeader title="Backends">
        {write && (
          <button type="button" className="primary" onClick={() => setF({ add: "1", name: "" })}>
            Add backend
          </button>
        )}
        <button type="button" onClick={list.reload}>
          Refresh
        </button>
      </PageHeader>
      <Notice {...(notice ?? { kind: "ok" })} />
      {f.add === "1" && write && (
        <BackendForm
          onCancel={() => setF({ add: "" })}
          onSaved={(name) => {
            setNotice({ text: `Added ${name}.`, kind: "ok" });
            setF({ add: "", name });
            list.reload();
          }}
        />
      )}
      <Load state={list} empty={(l) => l.length === 0} emptyText="No backends yet: add an MCP server to put it behind the hub.">
        {(bs) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Health</th>
                  <th scope="col">Transport</th>
                  <th scope="col" className="num">Tools</th>
                  <th scope="col" className="num">Restarts</th>
                  <th scope="col">Last error</th>
                  <th scope="col">Source</th>
                </tr>
              </thead>
              <tbody>
                {bs.map((b) => (
                  <tr key={b.name} className={b.name === f.name ? "selected" : undefined}>
                    <td>
                      <Link href={`/backends?name=${encodeURIComponent(b.name)}`}>{b.name}</Link>
                    </td>
                    <td>
                      <Badge kind={b.health}>{b.health}</Badge>
                    </td>
                    <td>{b.transport}</td>
                    <td className="num">
                      <Link href={`/tools?backend=${encodeURIComponent(b.name)}`} aria-label={`${b.tools} tools of ${b.name}`}>
                        {b.tools}
                      </Link>
                    </td>
                    <td className="num">{b.restarts}</td>
                    <td className="wrap">{b.last_error ?? <span className="muted">—</span>}</td>
                    <td>{b.source}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Load>
      {selected && (
        <div className="card">
          <h2>{selected.name}</h2>
          <dl className="facts">
            <dt>Endpoint</dt>
            <dd>
              <code>{selected.transport === "stdio" ? [selected.command, ...selected.args].join(" ") : selected.url}</code>
            </dd>
            <dt>Server</dt>
            <dd>{selected.server_info ? `${String((selected.server_info as Record<string, unknown>).name ?? "")} ${String((selected.server_info as Record<string, unknown>).version ?? "")}` : "—"}</dd>
            <dt>Prompts / resources</dt>
            <dd>
              {selected.prompts} / {selected.resources}
            </dd>
            <dt>Updated</dt>
            <dd>
              <Time iso={selected.updated_at} /> {selected.created_by && <span className="muted">by {selected.created_by}</span>}
            </dd>
          </dl>
          {write && selected.source === "runtime" ? (
            <>
              <BackendForm
                key={selected.name}
                initial={selected}
                onCancel={() => setF({ name: "" })}
                onSaved={(name) => {
                  setNotice({ text: `Saved ${name}.`, kind: "ok" });
                  list.reload();
                }}
              />
              <ConfirmButton label="Remove" what={selected.name} question={`Remove backend ${selected.name}? Its tools disappear from /mcp.`} onConfirm={() => remove(selected)} />
            </>
          ) : (
            selected.source === "config" && <p className="muted">Defined in the config file: edit it there.</p>
          )}
        </div>
      )}
    </section>
  );
}

function BackendForm({ initial, onSaved, onCancel }: { initial?: Info; onSaved: (name: string) => void; onCancel: () => void }) {
  const [name, setName] = useState(initial?.name ?? "");
  const [transport, setTransport] = useState<Def["transport"]>(initial?.transport ?? "stdio");
  const [command, setCommand] = useState(initial?.command ?? "");
  const [args, setArgs] = useState((initial?.args ?? []).join("\n"));
  const [env, setEnv] = useState(formatKv(initial?.env));
  const [url, setUrl] = useState(initial?.url ?? "");
  const [headers, setHeaders] = useState(formatKv(initial?.headers, ": "));
  const [timeout, setTimeout_] = useState(initial?.timeout_secs ? String(initial.timeout_secs) : "");
  const [enabled, setEnabled] = useState(initial?.enabled ?? true);
  const [isolation, setIsolation] = useState(initial?.isolation ?? "shared");
  const [maxProcesses, setMaxProcesses] = useState(initial?.max_processes ? String(initial.max_processes) : "");
  const [idleSecs, setIdleSecs] = useState(initial?.process_idle_secs ? String(initial.process_idle_secs) : "");
  const [result, setResult] = useState<{ text: string; kind: "ok" | "error" }>();
  const [busy, setBusy] = useState(false);

  const definition = (): Def | string => {
    const e = parseKv(env);
    if (e.error) return `Environment: ${e.error}`;
    const h = parseKv(headers, ":");
    if (h.error) return `Headers: ${h.error}`;
    const d: Def = { name: name.trim(), transport, enabled };
    if (transport === "stdio") {
      d.command = command.trim();
      d.args = args.split("\n").map((a) => a.trim()).filter(Boolean);
      d.env = e.value;
      if (isolation !== "shared") {
        d.isolation = isolation;
        if (maxProcesses.trim()) d.max_processes = Number(maxProcesses);
        if (idleSecs.trim()) d.process_idle_secs = Number(idleSecs);
      }
    } else {
      d.url = url.trim();
      d.headers = h.value;
    }
    if (timeout.trim()) d.timeout_secs = Number(timeout);
    return d;
  };

  const test = async () => {
    const d = definition();
    if (typeof d === "string") return setResult({ text: d, kind: "error" });
    setBusy(true);
    setResult(undefined);
    try {
      const r = initial ? await api.post("/backends/{name}/test", undefined, { params: { name: initial.name } }) : await api.post("/backend-tests", d);
      setResult(
        r.ok
          ? { text: `Connected in ${r.latency_ms} ms: ${r.tools.length} tools (${r.tools.slice(0, 8).join(", ")}${r.tools.length > 8 ? ", …" : ""}).`, kind: "ok" }
          : { text: `Connection failed: ${r.error ?? "unknown error"}`, kind: "error" },
      );
    } catch (e) {
      setResult({ text: errorText(e), kind: "error" });
    }
    setBusy(false);
  };

  const save = async (ev: FormEvent) => {
    ev.preventDefault();
    const d = definition();
    if (typeof d === "string") return setResult({ text: d, kind: "error" });
    setBusy(true);
    try {
      if (initial) await api.put("/backends/{name}", d, { params: { name: initial.name } });
      else await api.post("/backends", d);
      onSaved(d.name);
    } catch (e) {
      setResult({ text: errorText(e), kind: "error" });
    }
    setBusy(false);
  };

  return (
    <form className="card form" onSubmit={save} aria-label={initial ? `Edit backend ${initial.name}` : "Add a backend"}>
      {!initial && <h2>Add a backend</h2>}
      <div className="grid2">
        <label>
          Name
          <input required value={name} disabled={!!initial} pattern="[A-Za-z0-9][A-Za-z0-9_-]{0,31}" onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Transport
          <select value={transport} onChange={(e) => setTransport(e.target.value as Def["transport"])}>
            <option value="stdio">stdio (a local program)</option>
            <option value="http">streamable HTTP</option>
            <option value="sse">legacy HTTP+SSE</option>
          </select>
        </label>
        {transport === "stdio" ? (
          <>
            <label>
              Command
              <input required value={command} onChange={(e) => setCommand(e.target.value)} placeholder="npx" />
            </label>
            <label>
              Arguments (one per line)
              <textarea rows={3} value={args} onChange={(e) => setArgs(e.target.value)} />
            </label>
            <label>
              Environment (NAME=value per line; *** keeps the stored value)
              <textarea rows={2} value={env} onChange={(e) => setEnv(e.target.value)} />
            </label>
            <label>
              Processes
              <select value={isolation} onChange={(e) => setIsolation(e.target.value)}>
                <option value="shared">one, shared by every session</option>
                <option value="session">one per client session</option>
                <option value="user">one per user</option>
              </select>
            </label>
            {isolation !== "shared" && (
              <>
                <label>
                  Most processes at once
                  <input type="number" min={1} value={maxProcesses} onChange={(e) => setMaxProcesses(e.target.value)} placeholder="32" />
                </label>
                <label>
                  Stop an idle process after (seconds)
                  <input type="number" min={1} value={idleSecs} onChange={(e) => setIdleSecs(e.target.value)} placeholder="300" />
                </label>
              </>
            )}
          </>
        ) : (
          <>
            <label>
              URL
              <input required type="url" value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://mcp.example.com/mcp" />
            </label>
            <label>
              Headers (Name: value per line; *** keeps the stored value)
              <textarea rows={2} value={headers} onChange={(e) => setHeaders(e.target.value)} />
            </label>
          </>
        )}
        <label>
          Timeout (seconds)
          <input type="number" min={1} value={timeout} onChange={(e) => setTimeout_(e.target.value)} />
        </label>
        <label className="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled
        </label>
      </div>
      <Notice {...(result ?? { kind: "ok" })} />
      <div className="actions">
        <button type="button" onClick={test} disabled={busy}>
          Test connection
        </button>
        <button type="submit" className="primary" disabled={busy}>
          {initial ? "Save" : "Add backend"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
