import { useEffect, useRef, useState } from "react";
import { api, url, type Schemas } from "../api/client";
import { Badge, ErrorBox, Load, PageHeader, Spinner, Time } from "../components/ui";
import { AUDIT_FILTERS, describe, mergeLive, outcome, type AuditRecord } from "../lib/audit";
import { useFilters, useLoad } from "../lib/hooks";
import { apiQuery, isoToLocal, localToIso } from "../lib/query";

const PAGE = 50;
const MAX_SHOWN = 1000;

export default function Audit() {
  const [f, setF] = useFilters({ ...AUDIT_FILTERS, id: "", live: "1" });
  const { id, live, ...filters } = f;
  const query = apiQuery(filters);
  const key = JSON.stringify(query);
  const [items, setItems] = useState<AuditRecord[]>([]);
  const [cursor, setCursor] = useState<string | null>();
  const [liveState, setLiveState] = useState<"off" | "connecting" | "on" | "lost">("off");
  const first = useLoad(() => api.get("/audit", { query: { ...query, limit: PAGE } as never }), [key]);
  useEffect(() => {
    if (first.data) {
      setItems(first.data.items);
      setCursor(first.data.next_cursor);
    }
  }, [first.data]);

  // Live: new records pushed by the hub (server-sent events), newest on top.
  const newest = useRef(0);
  newest.current = items[0]?.seq ?? newest.current;
  useEffect(() => {
    if (live !== "1" || !first.data) {
      setLiveState("off");
      return;
    }
    setLiveState("connecting");
    const after = first.data.items[0]?.seq;
    const es = new EventSource(url("/audit/stream", undefined, { ...query, after }));
    es.onopen = () => setLiveState("on");
    es.onerror = () => setLiveState(es.readyState === EventSource.CLOSED ? "lost" : "connecting");
    es.addEventListener("record", (ev) => {
      const r = JSON.parse((ev as MessageEvent<string>).data) as AuditRecord;
      setItems((shown) => mergeLive(shown, [r], MAX_SHOWN));
    });
    return () => es.close();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [live, key, first.data]);

  const more = async () => {
    if (!cursor) return;
    const page = await api.get("/audit", { query: { ...query, cursor, limit: PAGE } as never });
    setItems((shown) => [...shown, ...page.items.filter((r) => !shown.some((s) => s.seq === r.seq))]);
    setCursor(page.next_cursor);
  };
  const verify = useLoad(() => api.get("/audit/verify"), []);

  return (
    <section>
      <PageHeader title="Audit">
        <label className="check">
          <input type="checkbox" checked={live === "1"} onChange={(e) => setF({ live: e.target.checked ? "1" : "0" })} /> Live
        </label>
        <span className={`live live-${liveState}`} role="status" aria-live="polite">
          {liveState === "on" ? "live" : liveState === "connecting" ? "connecting…" : liveState === "lost" ? "disconnected" : "paused"}
        </span>
        <a className="button" href={url("/audit/export", undefined, query)} download="audit.jsonl">
          Export JSONL
        </a>
      </PageHeader>
      <ChainStatus state={verify} />
      <form className="filters" role="search" aria-label="Audit filters" onSubmit={(e) => e.preventDefault()}>
        <TextFilter label="User" value={f.user} onChange={(user) => setF({ user })} />
        <TextFilter label="Key id" value={f.key_id} onChange={(key_id) => setF({ key_id })} />
        <TextFilter label="Tool (* wildcard)" value={f.tool} onChange={(tool) => setF({ tool })} />
        <TextFilter label="Backend" value={f.backend} onChange={(backend) => setF({ backend })} />
        <label>
          Decision
          <select value={f.decision} onChange={(e) => setF({ decision: e.target.value })}>
            <option value="">any</option>
            <option value="allow">allow</option>
            <option value="deny">deny</option>
          </select>
        </label>
        <label>
          Kind
          <select value={f.kind} onChange={(e) => setF({ kind: e.target.value })}>
            <option value="">any</option>
            <option value="mcp">MCP</option>
            <option value="ai">AI</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" value={isoToLocal(f.from)} onChange={(e) => setF({ from: localToIso(e.target.value) })} />
        </label>
        <label>
          To
          <input type="datetime-local" value={isoToLocal(f.to)} onChange={(e) => setF({ to: localToIso(e.target.value) })} />
        </label>
      </form>
      <div className="split">
        <div>
          {first.error ? (
            <ErrorBox error={first.error} retry={first.reload} />
          ) : !first.data ? (
            <Spinner />
          ) : items.length === 0 ? (
            <p className="empty">No audit records match{live === "1" ? " yet: new ones appear here as they happen" : ""}.</p>
          ) : (
            <div className="table-wrap">
              <table className="audit">
                <caption className="sr-only">Audit records, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Who</th>
                    <th scope="col">What</th>
                    <th scope="col">Backend</th>
                    <th scope="col">Outcome</th>
                    <th scope="col" className="num">ms</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((r) => (
                    <tr key={r.seq} className={r.id === id ? "selected" : undefined} data-seq={r.seq}>
                      <td>
                        <button type="button" className="link" onClick={() => setF({ id: r.id })}>
                          <Time iso={r.ts} />
                          <span className="sr-only"> details of record {r.seq}</span>
                        </button>
                      </td>
                      <td>{r.username ?? r.user_id ?? "—"}</td>
                      <td className="wrap">
                        <Badge kind="idle">{r.kind}</Badge> {describe(r)}
                      </td>
                      <td>{r.backend ?? "—"}</td>
                      <td>
                        <Badge kind={outcome(r)}>{outcome(r) === "none" ? "—" : outcome(r)}</Badge>
                      </td>
                      <td className="num">{r.latency_ms == null ? "—" : Math.round(r.latency_ms)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {cursor && (
            <button type="button" onClick={more}>
              Load older records
            </button>
          )}
        </div>
        {id && <Detail id={id} onClose={() => setF({ id: "" })} />}
      </div>
    </section>
  );
}

function TextFilter({ label, value, onChange }: { label: string; value: string; onChange: (v: string) => void }) {
  const [text, setText] = useState(value);
  useEffect(() => setText(value), [value]);
  return (
    <label>
      {label}
      <input
        value={text}
        onChange={(e) => setText(e.target.value)}
        onBlur={() => text !== value && onChange(text)}
        onKeyDown={(e) => e.key === "Enter" && onChange(text)}
      />
    </label>
  );
}

function ChainStatus({ state }: { state: ReturnType<typeof useLoad<Schemas["ChainReport"]>> }) {
  if (state.error) return <p className="notice error">Chain verification failed: {state.error.message}</p>;
  if (!state.data) return <p className="muted small">Verifying the hash chain…</p>;
  const r = state.data;
  return r.ok ? (
    <p className="notice ok small" role="status">
      Hash chain intact: {r.checked} records checked.
    </p>
  ) : (
    <p className="notice error" role="alert">
      Hash chain broken at record {r.first_bad?.seq} ({r.first_bad?.problem}): {r.first_bad?.detail}
    </p>
  );
}

function Detail({ id, onClose }: { id: string; onClose: () => void }) {
  const rec = useLoad(() => api.get("/audit/{id}", { params: { id } }), [id]);
  return (
    <aside className="card detail" aria-label="Record details">
      <div className="detail-head">
        <h2>Record</h2>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
      <Load state={rec}>
        {(r) => (
          <>
            <dl className="facts">
              {(
                [
                  ["seq", r.seq],
                  ["time", r.ts],
                  ["kind", r.kind],
                  ["user", r.username ?? r.user_id],
                  ["key", r.key_id],
                  ["agent", r.agent],
                  ["client", r.client_app],
                  ["method", r.method],
                  ["backend", r.backend],
                  ["tool", r.tool],
                  ["decision", r.decision],
                  ["rule", r.rule],
                  ["status", r.status],
                  ["error", r.error_code != null ? `${r.error_code} ${r.error_message ?? ""}` : r.error_message],
                  ["latency ms", r.latency_ms],
                  ["tokens in/out", r.input_tokens != null ? `${r.input_tokens} / ${r.output_tokens ?? 0}` : null],
                  ["cost USD", r.cost_usd],
                  ["action", r.action],
                  ["target", r.target],
                  ["hash", r.hash],
                ] as [string, unknown][]
              )
                .filter(([, v]) => v !== null && v !== undefined && v !== "")
                .map(([k, v]) => (
                  <div key={k}>
                    <dt>{k}</dt>
                    <dd className="wrap">{String(v)}</dd>
                  </div>
                ))}
            </dl>
            {(["arguments", "result", "details"] as const).map((k) =>
              r[k] === undefined || r[k] === null ? null : (
                <div key={k}>
                  <h3>{k} (redacted)</h3>
                  <pre tabIndex={0} aria-label={`${k} of the record`}>
                    {JSON.stringify(r[k], null, 2)}
                  </pre>
                </div>
              ),
            )}
          </>
        )}
      </Load>
    </aside>
  );
}
