// Filters kept in the query string, so a filtered view is a shareable URL.

/** Which filters a page has and their defaults; every value is a string. */
export type FilterSpec<K extends string> = Record<K, string>;

/** The filters in `search` (`?a=1&b=2`), defaults for the missing ones; unknown keys are ignored. */
export function parseFilters<K extends string>(search: string, spec: FilterSpec<K>): Record<K, string> {
  const q = new URLSearchParams(search);
  const out = { ...spec };
  for (const k of Object.keys(spec) as K[]) {
    const v = q.get(k);
    if (v !== null) out[k] = v;
  }
  return out;
}

/** The query string (with `?`, or empty) of `filters`, leaving out defaults and empty values, keys in spec order. */
export function toSearch<K extends string>(filters: Record<K, string>, spec: FilterSpec<K>): string {
  const q = new URLSearchParams();
  for (const k of Object.keys(spec) as K[]) {
    const v = filters[k]?.trim() ?? "";
    if (v !== "" && v !== spec[k]) q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The API query for `filters`: empty values dropped. */
export function apiQuery<K extends string>(filters: Record<K, string>): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [k, v] of Object.entries(filters) as [K, string][]) {
    if (v.trim() !== "") out[k] = v.trim();
  }
  return out;
}

/** A `datetime-local` input value (local time) as RFC 3339 UTC, or "" when empty or invalid. */
export function localToIso(v: string): string {
  if (!v) return "";
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** RFC 3339 as a `datetime-local` input value in local time, or "" when empty or invalid. */
export function isoToLocal(v: string): string {
  if (!v) return "";
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
