// Usage rows (group x bucket) shaped into a table: one row per group, one
// column per bucket, plus totals.
import type { Schemas } from "../api/client";

export type UsageRow = Schemas["UsageRow"];

export interface UsageTable {
  buckets: string[];
  rows: { group: string; label: string; cells: number[]; total: number }[];
}

/** Pivot of `rows` on `value` (e.g. cost), groups by total descending, at most `maxGroups`. */
export function pivot(rows: UsageRow[], value: (r: UsageRow) => number, maxGroups = 10): UsageTable {
  const buckets = [...new Set(rows.map((r) => r.bucket ?? ""))].sort();
  const groups = new Map<string, { label: string; cells: number[] }>();
  for (const r of rows) {
    const g = r.group ?? "(none)";
    let e = groups.get(g);
    if (!e) {
      e = { label: r.label ?? g, cells: buckets.map(() => 0) };
      groups.set(g, e);
    }
    e.cells[buckets.indexOf(r.bucket ?? "")] += value(r);
  }
  const out = [...groups.entries()].map(([group, e]) => ({ group, label: e.label, cells: e.cells, total: e.cells.reduce((a, b) => a + b, 0) }));
  out.sort((a, b) => b.total - a.total || a.group.localeCompare(b.group));
  return { buckets, rows: out.slice(0, maxGroups) };
}
