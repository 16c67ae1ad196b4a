import { useEffect } from "react";
import { api } from "../api/client";
import { Chart } from "../components/Chart";
import { Badge, Load, PageHeader } from "../components/ui";
import { errorRate, latencyLines, ratePerMinute } from "../lib/charts";
import { useFilters, useLoad } from "../lib/hooks";
import { Link } from "../lib/router";
import { useSession } from "../session";

const REFRESH_MS = 10_000;

export default function Overview() {
  const { can } = useSession();
  const [f, setF] = useFilters({ minutes: "60" });
  const overview = useLoad(() => api.get("/overview", { query: { minutes: Number(f.minutes) || 60 } }), [f.minutes]);
  const backends = useLoad(() => (can("backends:read") ? api.get("/backends") : Promise.resolve([])), []);
  const agents = useLoad(() => (can("agents:read") ? api.get("/agents") : Promise.resolve([])), []);
  const { reload } = overview;
  useEffect(() => {
    const t = setInterval(() => {
      reload();
      backends.reload();
      agents.reload();
    }, REFRESH_MS);
    return () => clearInterval(t);
  }, [reload, backends.reload, agents.reload]);
  return (
    <section>
      <PageHeader title="Overview">
        <label className="inline">
          Window
          <select value={f.minutes} onChange={(e) => setF({ minutes: e.target.value })}>
            <option value="15">15 minutes</option>
            <option value="60">1 hour</option>
            <option value="360">6 hours</option>
            <option value="1440">24 hours</option>
          </select>
        </label>
      </PageHeader>
      <Load state={overview}>
        {(o) => {
          const labels = o.series.length ? [new Date(o.series[0].ts).toLocaleTimeString(), new Date(o.to).toLocaleTimeString()] : [];
          return (
            <>
              <div className="stats">
                <Stat label="Requests" value={o.requests} />
                <Stat label="Error rate" value={o.requests ? `${((100 * o.errors) / o.requests).toFixed(1)}%` : "—"} />
                <Stat label="p50 / p99" value={o.p50_ms == null ? "—" : `${fmtMs(o.p50_ms)} / ${fmtMs(o.p99_ms)}`} />
                <Stat label="AI spend today" value={`$${o.ai_spend_today_usd.toFixed(2)}`} />
                {can("agents:read") && <Stat label="Agents online" value={agents.data ? agents.data.filter((a) => a.online).length : "…"} />}
              </div>
              <div className="charts">
                <Chart title="Request rate" lines={[ratePerMinute(o.series, o.step_secs)]} labels={labels} unit="/min" />
                <Chart title="Error rate" lines={[errorRate(o.series)]} labels={labels} unit="%" />
                <Chart title="Latency" lines={latencyLines(o.series)} labels={labels} unit=" ms" />
              </div>
              <h2>Top tools</h2>
              {o.top_tools.length === 0 ? (
                <p className="empty">No calls in this window.</p>
              ) : (
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Tool</th>
                      <th scope="col">Backend</th>
                      <th scope="col" className="num">Calls</th>
                      <th scope="col" className="num">Errors</th>
                    </tr>
                  </thead>
                  <tbody>
                    {o.top_tools.map((t) => (
                      <tr key={`${t.backend}/${t.tool}`}>
                        <td>
                          <Link href={`/audit?tool=${encodeURIComponent(t.tool)}`}>{t.tool}</Link>
                        </td>
                        <td>{t.backend ?? "—"}</td>
                        <td className="num">{t.calls}</td>
                        <td className="num">{t.errors}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </>
          );
        }}
      </Load>
      {can("backends:read") && (
        <>
          <h2>Backend health</h2>
          <Load state={backends} empty={(b) => b.length === 0} emptyText={<>No backends yet. <Link href="/backends">Add one</Link>.</>}>
            {(bs) => (
              <ul className="health">
                {bs.map((b) => (
                  <li key={b.name}>
                    <Badge kind={b.health}>{b.health}</Badge> <Link href={`/backends?name=${encodeURIComponent(b.name)}`}>{b.name}</Link>{" "}
                    <span className="muted">{b.tools} tools</span>
                  </li>
                ))}
              </ul>
            )}
          </Load>
        </>
      )}
    </section>
  );
}

function Stat({ label, value }: { label: string; value: string | number }) {
  return (
    <div className="stat">
      <div className="stat-value">{value}</div>
      <div className="stat-label">{label}</div>
    </div>
  );
}

function fmtMs(v: number | null | undefined): string {
  if (v == null) return "—";
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}
