// The rate limit editor: a rule counts requests or (AI API only) tokens.
import type { Schemas } from "../api/client";
import { optionalText, requiredNumber } from "./forms";

export type LimitRule = Schemas["LimitRule"];
export type LimitStatus = Schemas["LimitStatus"];

export interface LimitForm {
  scope: Schemas["Scope"];
  match: string;
  unit: Schemas["Unit"];
  max: string;
  window: Schemas["Window"];
  enabled: boolean;
}

export function limitForm(r?: LimitRule): LimitForm {
  const max = r ? (r.unit === "tokens" ? r.max_tokens : r.max_requests) : 60;
  return {
    scope: r?.scope ?? "user",
    match: r?.match ?? "",
    unit: r?.unit ?? "requests",
    max: max === null || max === undefined ? "" : String(max),
    window: r?.window ?? "minute",
    enabled: r?.enabled ?? true,
  };
}

/** The hub's bound on a rule's maximum. */
export const LIMIT_MAX = 1_000_000_000;

/** The body of `POST /limits` or `PUT /limits/{id}`: exactly one of `max_requests` and `max_tokens`. */
export function limitBody(f: LimitForm): { body?: Schemas["NewLimitRule"]; error?: string } {
  const label = f.unit === "tokens" ? "Max tokens" : "Max requests";
  const max = requiredNumber(label, f.max, { min: 1, max: LIMIT_MAX, integer: true });
  if (max.error !== undefined) return { error: max.error };
  const body: Schemas["NewLimitRule"] = { scope: f.scope, match: optionalText(f.match), window: f.window, enabled: f.enabled };
  if (f.unit === "tokens") body.max_tokens = max.value;
  else body.max_requests = max.value;
  return { body };
}

/** "60 requests" or "5000 tokens" per window. */
export function maxText(r: Pick<LimitRule, "unit" | "max_requests" | "max_tokens">): string {
  return r.unit === "tokens" ? `${r.max_tokens ?? 0} tokens` : `${r.max_requests ?? 0} requests`;
}

/** Share of a rule's maximum used, 0 to 100. */
export function usedPercent(s: Pick<LimitStatus, "count" | "max">): number {
  if (s.max <= 0) return 100;
  return Math.min(100, Math.round((100 * s.count) / s.max));
}
