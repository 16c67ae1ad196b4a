// The policy rule editor's logic: ordering (drag, keyboard), the editable
// form of a rule and what is sent back.
import type { Schemas } from "../api/client";

export type Rule = Schemas["PolicyRule"];
export type RuleBody = Schemas["RuleBody"];
export type Risk = Schemas["Risk"];

/** `list` with the item at `from` moved to index `to` (clamped). */
export function move<T>(list: readonly T[], from: number, to: number): T[] {
  const out = list.slice();
  if (from < 0 || from >= out.length) return out;
  const [item] = out.splice(from, 1);
  out.splice(Math.max(0, Math.min(to, out.length)), 0, item);
  return out;
}

/** `list` with the rule `id` moved `delta` places (negative: earlier). */
export function moveBy<T extends { id: string }>(list: readonly T[], id: string, delta: number): T[] {
  const i = list.findIndex((r) => r.id === id);
  return i < 0 ? list.slice() : move(list, i, i + delta);
}

/** True when `a` and `b` hold the same ids in the same order. */
export function sameOrder(a: readonly { id: string }[], b: readonly { id: string }[]): boolean {
  return a.length === b.length && a.every((r, i) => r.id === b[i].id);
}

/** The rule editor's form: list fields as comma-separated text. */
export interface RuleForm {
  name: string;
  description: string;
  effect: "allow" | "deny";
  enabled: boolean;
  roles: string;
  users: string;
  keys: string;
  agents: string;
  client_apps: string;
  backends: string;
  tools: string;
  risks: Risk[];
}

export const LIST_FIELDS = ["roles", "users", "keys", "agents", "client_apps", "backends", "tools"] as const;

export function emptyForm(): RuleForm {
  return {
    name: "",
    description: "",
    effect: "deny",
    enabled: true,
    roles: "",
    users: "",
    keys: "",
    agents: "",
    client_apps: "",
    backends: "",
    tools: "",
    risks: [],
  };
}

/** "a, b ,,c" as ["a", "b", "c"]. */
export function splitList(text: string): string[] {
  return text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export function toForm(r: Rule): RuleForm {
  const f = emptyForm();
  f.name = r.name;
  f.description = r.description;
  f.effect = r.effect;
  f.enabled = r.enabled;
  for (const k of LIST_FIELDS) f[k] = r[k].join(", ");
  f.risks = [...r.risks];
  return f;
}

/** The API body of `f`, or the first problem with it. */
export function toBody(f: RuleForm): { body?: RuleBody; error?: string } {
  const name = f.name.trim();
  if (!name) return { error: "A rule needs a name." };
  const body: RuleBody = { name, description: f.description.trim(), effect: f.effect, enabled: f.enabled, risks: f.risks };
  for (const k of LIST_FIELDS) body[k] = splitList(f[k]);
  return { body };
}

/** One line saying what a rule matches, e.g. "role developer · tools fs__* · risk high". */
export function summary(r: Pick<Rule, (typeof LIST_FIELDS)[number] | "risks">): string {
  const parts: string[] = [];
  const add = (label: string, v: string[]) => v.length && parts.push(`${label} ${v.join(", ")}`);
  add("role", r.roles);
  add("user", r.users);
  add("key", r.keys);
  add("agent", r.agents);
  add("client", r.client_apps);
  add("backend", r.backends);
  add("tools", r.tools);
  add("risk", r.risks);
  return parts.length ? parts.join(" · ") : "every call";
}
