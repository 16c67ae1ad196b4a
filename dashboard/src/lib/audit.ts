// The audit page's filters and live merging.
import type { Schemas } from "../api/client";

export type AuditRecord = Schemas["AuditRecord"];

export const AUDIT_FILTERS = { user: "", key_id: "", tool: "", backend: "", decision: "", kind: "", status: "", from: "", to: "" };
export type AuditFilters = typeof AUDIT_FILTERS;

/** Merges live records into the list shown (newest first): no duplicates, at most `max`. */
export function mergeLive(shown: AuditRecord[], incoming: AuditRecord[], max: number): AuditRecord[] {
  const seen = new Set(shown.map((r) => r.seq));
  const fresh = incoming.filter((r) => !seen.has(r.seq)).sort((a, b) => b.seq - a.seq);
  return [...fresh, ...shown].slice(0, max);
}

/** What a record is about, in a few words. */
export function describe(r: AuditRecord): string {
  if (r.kind === "admin") return r.target && r.action?.includes(r.target) ? r.action : [r.action, r.target].filter(Boolean).join(" ");
  return [r.method, r.tool].filter(Boolean).join(" ");
}

/** The outcome badge: "denied", "error", "ok" or "—". */
export function outcome(r: AuditRecord): "denied" | "error" | "ok" | "aborted" | "none" {
  if (r.decision === "deny") return "denied";
  if (r.status === "error") return "error";
  if (r.status === "client_abort") return "aborted";
  if (r.status === "ok") return "ok";
  return "none";
}
