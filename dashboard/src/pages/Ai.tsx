import { api } from "../api/client";
import { Load, PageHeader } from "../components/ui";
import { useFilters, useLoad } from "../lib/hooks";
import { pivot } from "../lib/usage";
import { useSession } from "../session";

const DAY_MS = 86_400_000;

export default function Ai() {
  const { can } = useSession();
  const [f, setF] = useFilters({ group_by: "user", days: "7", metric: "cost" });
  const providers = useLoad(() => (can("backends:read") ? api.get("/ai/providers") : Promise.resolve([])), []);
  const models = useLoad(() => (can("backends:read") ? api.get("/ai/models") : Promise.resolve([])), []);
  const budgets = useLoad(() => (can("limits:read") ? api.get("/ai/budgets") : Promise.resolve([])), []);
  const usage = useLoad(() => {
    const days = Math.max(1, Number(f.days) || 7);
    const to = new Date();
    const from = new Date(to.getTime() - days * DAY_MS);
    return can("usage:read")
      ? api.get("/ai/usage", { query: { group_by: f.group_by as "user", bucket: "day", from: from.toISOString(), to: to.toISOString() } })
      : Promise.resolve(undefined);
  }, [f.group_by, f.days]);
  const metric = (r: { cost_usd: number; requests: number; input_tokens: number; output_tokens: number }) =>
    f.metric === "cost" ? r.cost_usd : f.metric === "tokens" ? r.input_tokens + r.output_tokens : r.requests;
  const fmt = (v: number) => (f.metric === "cost" ? `$${v.toFixed(2)}` : String(v));
  return (
    <section>
      <PageHeader title="AI" />
      {can("usage:read") && (
        <>
          <h2>Usage</h2>
          <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Usage view">
            <label>
              By
              <select value={f.group_by} onChange={(e) => setF({ group_by: e.target.value })}>
                <option value="user">user</option>
                <option value="key">key</option>
                <option value="model">model</option>
              </select>
            </label>
            <label>
              Period
              <select value={f.days} onChange={(e) => setF({ days: e.target.value })}>
                <option value="1">1 day</option>
                <option value="7">7 days</option>
                <option value="30">30 days</option>
              </select>
            </label>
            <label>
              Show
              <select value={f.metric} onChange={(e) => setF({ metric: e.target.value })}>
                <option value="cost">cost (USD)</option>
                <option value="tokens">tokens</option>
                <option value="requests">requests</option>
              </select>
            </label>
          </form>
          <Load state={usage} empty={(u) => !u || u.rows.length === 0} emptyText="No AI requests in this period.">
            {(u) => {
              const t = pivot(u!.rows, metric);
              return (
                <div className="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">{f.group_by}</th>
                        {t.buckets.map((b) => (
                          <th key={b} scope="col" className="num">
                            {b.slice(5, 10)}
                          </th>
                        ))}
                        <th scope="col" className="num">
                          Total
                        </th>
                      </tr>
                    </thead>
                    <tbody>
                      {t.rows.map((r) => (
                        <tr key={r.group}>
                          <td>{r.label}</td>
                          {r.cells.map((c, i) => (
                            <td key={i} className="num">
                              {fmt(c)}
                            </td>
                          ))}
                          <td className="num">
                            <strong>{fmt(r.total)}</strong>
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              );
            }}
          </Load>
        </>
      )}
      {can("backends:read") && (
        <>
          <h2>Providers</h2>
          <Load state={providers} empty={(p) => p.length === 0} emptyText="No AI providers configured.">
            {(ps) => (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Kind</th>
                      <th scope="col">Base URL</th>
                      <th scope="col">Models</th>
                      <th scope="col">Source</th>
                    </tr>
                  </thead>
                  <tbody>
                    {ps.map((p) => (
                      <tr key={p.name}>
                        <td>{p.name}</td>
                        <td>{p.kind}</td>
                        <td className="wrap">
                          <code>{p.base_url}</code>
                        </td>
                        <td className="wrap small">{p.models.join(", ")}</td>
                        <td>{p.source}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Load>
          <h2>Models and prices</h2>
          <Load state={models} empty={(m) => m.length === 0} emptyText="No models registered.">
            {(ms) => (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Model</th>
                      <th scope="col">Provider</th>
                      <th scope="col" className="num">
                        Input $/Mtok
                      </th>
                      <th scope="col" className="num">
                        Output $/Mtok
                      </th>
                      <th scope="col">Aliases</th>
                    </tr>
                  </thead>
                  <tbody>
                    {ms.map((m) => (
                      <tr key={m.id}>
                        <td>{m.name}</td>
                        <td>{m.provider}</td>
                        <td className="num">{m.input_per_mtok ?? "—"}</td>
                        <td className="num">{m.output_per_mtok ?? "—"}</td>
                        <td className="small">{(m.aliases ?? []).join(", ")}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Load>
        </>
      )}
      {can("limits:read") && (
        <>
          <h2>Budgets</h2>
          <Load state={budgets} empty={(b) => b.length === 0} emptyText="No budgets.">
            {(bs) => (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Scope</th>
                      <th scope="col">Subject</th>
                      <th scope="col">Period</th>
                      <th scope="col" className="num">
                        USD
                      </th>
                      <th scope="col" className="num">
                        Tokens
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {bs.map((b) => (
                      <tr key={b.id}>
                        <td>{b.scope}</td>
                        <td>{b.subject ?? "every one"}</td>
                        <td>{b.period}</td>
                        <td className="num">{b.limit_usd ?? "—"}</td>
                        <td className="num">{b.limit_tokens ?? "—"}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Load>
        </>
      )}
    </section>
  );
}
