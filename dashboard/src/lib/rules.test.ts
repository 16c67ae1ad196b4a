import { describe, expect, it } from "vitest";
import { emptyForm, move, moveBy, sameOrder, splitList, summary, toBody, toForm, type Rule } from "./rules";

const rule = (id: string, extra: Partial<Rule> = {}): Rule => ({
  id,
  position: 0,
  name: id,
  description: "",
  effect: "deny",
  enabled: true,
  roles: [],
  users: [],
  keys: [],
  agents: [],
  client_apps: [],
  backends: [],
  tools: [],
  risks: [],
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
  ...extra,
});

describe("ordering", () => {
  const list = [rule("a"), rule("b"), rule("c"), rule("d")];
  const ids = (l: { id: string }[]) => l.map((r) => r.id).join("");

  it("moves an item to a drop position, in both directions", () => {
    expect(ids(move(list, 0, 2))).toBe("bcad");
    expect(ids(move(list, 3, 0))).toBe("dabc");
    expect(ids(move(list, 1, 1))).toBe("abcd");
  });

  it("clamps and ignores bad indexes without touching the input", () => {
    expect(ids(move(list, 0, 99))).toBe("bcda");
    expect(ids(move(list, 2, -5))).toBe("cabd");
    expect(ids(move(list, 7, 0))).toBe("abcd");
    expect(ids(list)).toBe("abcd");
  });

  it("moves by keyboard one place, stopping at the ends", () => {
    expect(ids(moveBy(list, "b", -1))).toBe("bacd");
    expect(ids(moveBy(list, "b", 1))).toBe("acbd");
    expect(ids(moveBy(list, "a", -1))).toBe("abcd");
    expect(ids(moveBy(list, "d", 1))).toBe("abcd");
    expect(ids(moveBy(list, "zz", 1))).toBe("abcd");
  });

  it("tells a changed order from the saved one", () => {
    expect(sameOrder(list, [...list])).toBe(true);
    expect(sameOrder(list, moveBy(list, "c", -1))).toBe(false);
    expect(sameOrder(list, list.slice(1))).toBe(false);
  });
});

describe("the rule form", () => {
  it("splits lists on commas and newlines, dropping blanks", () => {
    expect(splitList(" a, b ,,\nc ")).toEqual(["a", "b", "c"]);
    expect(splitList("  ")).toEqual([]);
  });

  it("round-trips a rule through the form into the API body", () => {
    const r = rule("x", { name: "no shell", effect: "deny", roles: ["developer", "viewer"], tools: ["shell__*"], risks: ["high"], enabled: false });
    const form = toForm(r);
    expect(form.roles).toBe("developer, viewer");
    const { body } = toBody(form);
    expect(body).toMatchObject({ name: "no shell", effect: "deny", enabled: false, roles: ["developer", "viewer"], tools: ["shell__*"], risks: ["high"], users: [] });
  });

  it("refuses a rule without a name", () => {
    expect(toBody({ ...emptyForm(), name: "  " }).error).toMatch(/name/);
  });

  it("summarises what a rule matches", () => {
    expect(summary(rule("a"))).toBe("every call");
    expect(summary(rule("a", { roles: ["developer"], tools: ["fs__*", "gh__*"], risks: ["high"] }))).toBe("role developer · tools fs__*, gh__* · risk high");
  });
});
