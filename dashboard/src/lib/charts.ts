// Shapes the hub's overview series into what the SVG charts draw.

export interface Point {
  ts: string;
  requests: number;
  errors: number;
  denials: number;
  p50_ms?: number | null;
  p99_ms?: number | null;
}

/** One line of a chart: y values in series order, `null` for gaps. */
export interface Line {
  name: string;
  values: (number | null)[];
}

/** Requests per minute at each point, from counts per step of `stepSecs`. */
export function ratePerMinute(points: Point[], stepSecs: number): Line {
  const f = stepSecs > 0 ? 60 / stepSecs : 0;
  return { name: "requests/min", values: points.map((p) => round(p.requests * f, 2)) };
}

/** Error rate in percent at each point; `null` where there were no requests. */
export function errorRate(points: Point[]): Line {
  return { name: "error %", values: points.map((p) => (p.requests > 0 ? round((100 * p.errors) / p.requests, 1) : null)) };
}

/** p50 and p99 latency lines. */
export function latencyLines(points: Point[]): Line[] {
  return [
    { name: "p50 ms", values: points.map((p) => p.p50_ms ?? null) },
    { name: "p99 ms", values: points.map((p) => p.p99_ms ?? null) },
  ];
}

/** A "nice" upper bound for an axis holding `max` (1, 2, 2.5 or 5 times a power of ten); 1 when empty. */
export function niceMax(max: number): number {
  if (!(max > 0) || !Number.isFinite(max)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * p >= max) return m * p;
  }
  return 10 * p;
}

/**
 * SVG path data for `values` in a `width` x `height` box with y from 0 to
 * `yMax`: a gap (`null`) breaks the line; a lone point is drawn as a dot-like
 * zero-length segment so it stays visible.
 */
export function linePath(values: (number | null)[], width: number, height: number, yMax: number): string {
  const n = values.length;
  if (n === 0 || yMax <= 0) return "";
  const x = (i: number) => round(n === 1 ? width / 2 : (i * width) / (n - 1), 2);
  const y = (v: number) => round(height - (Math.min(v, yMax) / yMax) * height, 2);
  const parts: string[] = [];
  let open = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      open = false;
      return;
    }
    const lone = !open && (i + 1 >= n || values[i + 1] === null);
    parts.push(`${open ? "L" : "M"}${x(i)},${y(v)}${lone ? `h0.01` : ""}`);
    open = true;
  });
  return parts.join(" ");
}

/** The largest finite value of `lines`, 0 when none. */
export function maxOf(lines: Line[]): number {
  let m = 0;
  for (const l of lines) for (const v of l.values) if (v !== null && Number.isFinite(v) && v > m) m = v;
  return m;
}

/** Short label of an axis value. */
export function formatValue(v: number): string {
  if (v >= 1_000_000) return `${round(v / 1_000_000, 1)}M`;
  if (v >= 1000) return `${round(v / 1000, 1)}k`;
  return String(round(v, v < 10 ? 2 : 1));
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
