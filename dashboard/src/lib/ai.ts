// The AI page's editors: provider, model (with prices) and budget forms and
// the bodies sent for them, and the usage report shaped for the chart.
import type { Schemas } from "../api/client";
import type { Line } from "./charts";
import { numberText, optionalNumber, optionalText, uniqueList, type Checked } from "./forms";
import type { UsageRow, UsageTable } from "./usage";

export type ProviderKind = Schemas["ProviderKind"];
export type ProviderView = Schemas["ProviderView"];
export type ProviderInput = Schemas["ProviderInput"];
export type ModelView = Schemas["ModelView"];
export type ModelConfig = Schemas["ModelConfig"];
export type BudgetView = Schemas["BudgetView"];
export type BudgetConfig = Schemas["BudgetConfig"];

export const PROVIDER_KINDS: { kind: ProviderKind; label: string }[] = [
  { kind: "openai", label: "OpenAI" },
  { kind: "anthropic", label: "Anthropic" },
  { kind: "gemini", label: "Google Gemini" },
  { kind: "azure", label: "Azure OpenAI" },
  { kind: "bedrock", label: "AWS Bedrock" },
  { kind: "openai_compatible", label: "OpenAI-compatible" },
];

/** Where each kind's API usually is, offered as the base URL's placeholder. */
export const DEFAULT_BASE_URL: Record<ProviderKind, string> = {
  openai: "https://api.openai.com",
  anthropic: "https://api.anthropic.com",
  gemini: "https://generativelanguage.googleapis.com",
  azure: "https://NAME.openai.azure.com",
  bedrock: "https://bedrock-runtime.us-east-1.amazonaws.com",
  openai_compatible: "http://127.0.0.1:11434/v1",
};

/** Provider names follow backend names: a letter or digit, then letters, digits, `_` or `-`, no `__`. */
const PROVIDER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

/** The provider editor's fields. The stored key is never loaded: `api_key` is only ever a new one. */
export interface ProviderForm {
  name: string;
  kind: ProviderKind;
  base_url: string;
  models: string;
  api_key: string;
  /** On edit: remove the stored key. */
  clear_key: boolean;
  api_key_env: string;
  api_version: string;
  region: string;
}

export function providerForm(p?: ProviderView): ProviderForm {
  return {
    name: p?.name ?? "",
    kind: p?.kind ?? "openai",
    base_url: p?.base_url ?? "",
    models: (p?.models ?? []).join(", "),
    api_key: "",
    clear_key: false,
    api_key_env: p?.api_key_env ?? "",
    api_version: p?.api_version ?? "",
    region: p?.region ?? "",
  };
}

/**
 * The body for creating (`editing` false) or replacing a provider. A blank
 * key is left out: on create there is none, on edit the stored one is kept;
 * `clear_key` sends an empty key, which removes it.
 */
export function providerBody(f: ProviderForm, editing: boolean): { body?: ProviderInput; error?: string } {
  const name = f.name.trim();
  if (!PROVIDER_NAME.test(name) || name.includes("__")) {
    return { error: "Name: 1-32 letters, digits, _ or -, starting with a letter or digit, without __." };
  }
  const base = f.base_url.trim();
  if (!/^https?:\/\/[^/\s]+/i.test(base)) return { error: "Base URL: an http:// or https:// URL." };
  const env = f.api_key_env.trim();
  if (env && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env)) return { error: "Key variable: an environment variable name such as OPENAI_API_KEY." };
  const body: ProviderInput = {
    name,
    kind: f.kind,
    base_url: base,
    models: uniqueList(f.models),
    api_key_env: optionalText(env),
    api_version: optionalText(f.api_version),
    region: optionalText(f.region),
  };
  const key = f.api_key.trim();
  if (editing && f.clear_key) body.api_key = "";
  else if (key) body.api_key = key;
  return { body };
}

/** "set" when the provider has a key (stored, or in its environment variable), else "not set". */
export function keyState(p: Pick<ProviderView, "api_key">): "set" | "not set" {
  return p.api_key ? "set" : "not set";
}

/** The model editor's fields; prices in USD per million tokens, blank for the default. */
export interface ModelForm {
  name: string;
  provider: string;
  upstream_model: string;
  weight: string;
  aliases: string;
  input: string;
  output: string;
  cache_read: string;
  cache_write: string;
  multiplier: string;
}

export function modelForm(m?: ModelView, provider = ""): ModelForm {
  return {
    name: m?.name ?? "",
    provider: m?.provider ?? provider,
    upstream_model: m?.upstream_model ?? "",
    weight: m?.weight === undefined ? "" : String(m.weight),
    aliases: (m?.aliases ?? []).join(", "),
    input: numberText(m?.input_per_mtok),
    output: numberText(m?.output_per_mtok),
    cache_read: numberText(m?.cache_read_per_mtok),
    cache_write: numberText(m?.cache_write_per_mtok),
    multiplier: numberText(m?.multiplier),
  };
}

/** The hub's bound on prices and multipliers. */
export const PRICE_MAX = 100_000_000;

export function modelBody(f: ModelForm): { body?: ModelConfig; error?: string } {
  const name = f.name.trim();
  if (!name) return { error: "Name: required (the name clients send as `model`)." };
  if (!f.provider) return { error: "Provider: pick one (add a provider first)." };
  const aliases = uniqueList(f.aliases);
  if (aliases.length > 32) return { error: "Aliases: at most 32." };
  const price = (label: string, text: string) => optionalNumber(label, text, { min: 0, max: PRICE_MAX });
  const fields: [keyof ModelConfig, Checked<number | null>][] = [
    ["input_per_mtok", price("Input price", f.input)],
    ["output_per_mtok", price("Output price", f.output)],
    ["cache_read_per_mtok", price("Cache read price", f.cache_read)],
    ["cache_write_per_mtok", price("Cache write price", f.cache_write)],
    ["multiplier", price("Multiplier", f.multiplier)],
  ];
  const body: ModelConfig = { name, provider: f.provider, upstream_model: optionalText(f.upstream_model), aliases };
  for (const [k, c] of fields) {
    if (c.error !== undefined) return { error: c.error };
    (body as Record<string, unknown>)[k] = c.value;
  }
  const weight = optionalNumber("Weight", f.weight, { min: 0, max: 1_000_000, integer: true });
  if (weight.error !== undefined) return { error: weight.error };
  if (weight.value !== null) body.weight = weight.value;
  return { body };
}

/** "$1.5 / $6" style price cell: "—" when not set (the built-in price or the input price applies). */
export function price(v: number | null | undefined): string {
  return v === null || v === undefined ? "—" : `$${v}`;
}

/** The budget editor's fields. */
export interface BudgetForm {
  id: string;
  scope: Schemas["BudgetScope"];
  subject: string;
  period: Schemas["Period"];
  limit_usd: string;
  limit_tokens: string;
}

export function budgetForm(b?: BudgetView): BudgetForm {
  return {
    id: b?.id ?? "",
    scope: b?.scope ?? "user",
    subject: b?.subject ?? "",
    period: b?.period ?? "month",
    limit_usd: numberText(b?.limit_usd),
    limit_tokens: numberText(b?.limit_tokens),
  };
}

/** An id for a budget left without one: "role-developer-month", "user-each-day". */
export function budgetId(f: Pick<BudgetForm, "scope" | "subject" | "period">): string {
  const subject = f.subject.trim() || "each";
  return `${f.scope}-${subject}-${f.period}`.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 64);
}

export function budgetBody(f: BudgetForm): { body?: BudgetConfig; error?: string } {
  const id = f.id.trim() || budgetId(f);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return { error: "Id: 1-64 letters, digits, - or _." };
  const usd = optionalNumber("Limit in USD", f.limit_usd, { min: 0, max: 1e12 });
  if (usd.error !== undefined) return { error: usd.error };
  const tokens = optionalNumber("Limit in tokens", f.limit_tokens, { min: 0, integer: true });
  if (tokens.error !== undefined) return { error: tokens.error };
  if (usd.value === null && tokens.value === null) return { error: "Give a limit in USD, in tokens, or both." };
  return { body: { id, scope: f.scope, subject: optionalText(f.subject), period: f.period, limit_usd: usd.value, limit_tokens: tokens.value } };
}

/** Budgets alert at these shares of their limit (hub-wide, not per budget). */
export const BUDGET_ALERTS = [50, 80, 95, 100];

/** What the usage page shows per group and bucket. */
export type Metric = "cost" | "tokens" | "requests";

export function metricOf(metric: string): (r: UsageRow) => number {
  if (metric === "tokens") return (r) => r.input_tokens + r.output_tokens;
  if (metric === "requests") return (r) => r.requests;
  return (r) => r.cost_usd;
}

/** The busiest `max` groups of a pivoted report as chart lines, one value per bucket. */
export function usageLines(t: UsageTable, max = 3): Line[] {
  return t.rows.slice(0, max).map((r) => ({ name: r.label, values: r.cells }));
}

/**
 * Every bucket start from `from` to `to` as the hub writes them
 * ("2026-05-14T09:00:00Z"), so quiet hours or days show as zero instead of
 * being skipped. At most `max` buckets (the latest are kept).
 */
export function bucketsBetween(from: string, to: string, bucket: "hour" | "day", max = 2400): string[] {
  const step = bucket === "hour" ? 3_600_000 : 86_400_000;
  const start = Math.floor(Date.parse(from) / step) * step;
  const end = Date.parse(to);
  if (!Number.isFinite(start) || !Number.isFinite(end)) return [];
  const out: string[] = [];
  const last = Math.ceil(end / step) * step - step;
  for (let t = Math.max(start, last - (max - 1) * step); t <= last; t += step) out.push(new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z"));
  return out;
}

/** `t` with one column per bucket of `buckets` (zero where the report has none); `t` itself when it has buckets `buckets` lacks. */
export function onTimeline(t: UsageTable, buckets: string[]): UsageTable {
  if (buckets.length === 0 || t.buckets.some((b) => !buckets.includes(b))) return t;
  const index = new Map(t.buckets.map((b, i) => [b, i]));
  return {
    buckets,
    rows: t.rows.map((r) => ({
      ...r,
      cells: buckets.map((b) => {
        const i = index.get(b);
        return i === undefined ? 0 : r.cells[i];
      }),
    })),
  };
}

/** A bucket's start as an axis label: "05-14" for days, "05-14 09:00" for hours (UTC). */
export function bucketLabel(iso: string, bucket: "hour" | "day"): string {
  return bucket === "hour" ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(5, 10);
}

export interface UsageTotal {
  group: string;
  label: string;
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
}

/** Sums of a (bucketed) report per group over the whole period, by cost then requests, descending. */
export function totals(rows: UsageRow[]): UsageTotal[] {
  const by = new Map<string, UsageTotal>();
  for (const r of rows) {
    const group = r.group ?? "(none)";
    let t = by.get(group);
    if (!t) {
      t = { group, label: r.label ?? group, requests: 0, errors: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 };
      by.set(group, t);
    }
    t.requests += r.requests;
    t.errors += r.errors;
    t.input_tokens += r.input_tokens;
    t.output_tokens += r.output_tokens;
    t.cost_usd += r.cost_usd;
  }
  return [...by.values()].sort((a, b) => b.cost_usd - a.cost_usd || b.requests - a.requests || a.group.localeCompare(b.group));
}

/** USD with cents, or two significant digits for small amounts ("$0.0042"). */
export function usd(v: number): string {
  if (v !== 0 && Math.abs(v) < 0.01) return `$${Number(v.toPrecision(2))}`;
  return `$${v.toFixed(2)}`;
}
