// A line chart in plain SVG: a few lines over shared x positions.
import { formatValue, linePath, maxOf, niceMax, type Line } from "../lib/charts";

const W = 600;
const H = 160;
const COLORS = ["#1f6feb", "#d1242f", "#8250df"];

/** `format` writes the legend's and the axis's values (default: short numbers like "1.2k"). */
export function Chart(props: { title: string; lines: Line[]; labels: string[]; unit?: string; format?: (v: number) => string }) {
  const { title, lines, labels, unit, format = formatValue } = props;
  const yMax = niceMax(maxOf(lines));
  const last = lines.map((l) => [...l.values].reverse().find((v) => v !== null) ?? null);
  const empty = lines.every((l) => l.values.every((v) => v === null || v === 0));
  return (
    <figure className="chart">
      <figcaption>
        <span className="chart-title">{title}</span>
        <span className="chart-legend">
          {lines.map((l, i) => (
            <span key={l.name}>
              <span className={`swatch swatch-${i}`} aria-hidden="true" />
              {l.name}: {last[i] === null ? "—" : `${format(last[i])}${unit ?? ""}`}
            </span>
          ))}
        </span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H + 20}`} role="img" aria-label={`${title} chart${empty ? ", no data in this window" : ""}`} preserveAspectRatio="none">
        <line x1="0" y1={H} x2={W} y2={H} className="axis" />
        <line x1="0" y1={0} x2={W} y2={0} className="grid" />
        <line x1="0" y1={H / 2} x2={W} y2={H / 2} className="grid" />
        <text x="2" y="12" className="tick">
          {format(yMax)}
          {unit}
        </text>
        {labels.length > 0 && (
          <>
            <text x="2" y={H + 16} className="tick">
              {labels[0]}
            </text>
            <text x={W - 2} y={H + 16} className="tick" textAnchor="end">
              {labels[labels.length - 1]}
            </text>
          </>
        )}
        {lines.map((l, i) => (
          <path key={l.name} d={linePath(l.values, W, H, yMax)} stroke={COLORS[i % COLORS.length]} className="line" />
        ))}
      </svg>
    </figure>
  );
}
