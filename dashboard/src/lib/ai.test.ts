import { describe, expect, it } from "vitest";
import {
  bucketLabel,
  bucketsBetween,
  budgetBody,
  budgetForm,
  budgetId,
  keyState,
  modelBody,
  modelForm,
  onTimeline,
  providerBody,
  providerForm,
  totals,
  usageLines,
  usd,
  type ModelView,
  type ProviderView,
} from "./ai";
import { pivot, type UsageRow } from "./usage";

const provider: ProviderView = { name: "openai", kind: "openai", base_url: "https://api.openai.com", models: ["gpt-*"], api_key: "***", source: "store" };

describe("provider form", () => {
  it("never loads the stored key into the form", () => {
    const f = providerForm(provider);
    expect(f.api_key).toBe("");
    expect(f.models).toBe("gpt-*");
  });

  it("leaves a blank key out, so an edit keeps the stored one", () => {
    const { body } = providerBody(providerForm(provider), true);
    expect(body).toBeDefined();
    expect(body && "api_key" in body).toBe(false);
  });

  it("sends a new key, or an empty one to remove the stored key", () => {
    expect(providerBody({ ...providerForm(provider), api_key: " sk-new " }, true).body?.api_key).toBe("sk-new");
    expect(providerBody({ ...providerForm(provider), api_key: "sk-ignored", clear_key: true }, true).body?.api_key).toBe("");
    // Removing only means something on edit.
    expect(providerBody({ ...providerForm(), name: "p", base_url: "http://127.0.0.1:9", clear_key: true }, false).body).not.toHaveProperty("api_key");
  });

  it("shapes lists and optional fields", () => {
    const { body } = providerBody(
      { ...providerForm(), name: " azure-1 ", kind: "azure", base_url: " https://x.openai.azure.com ", models: "gpt-4o, gpt-4o,\no4-*", api_version: " 2024-10-21 " },
      false,
    );
    expect(body).toEqual({
      name: "azure-1",
      kind: "azure",
      base_url: "https://x.openai.azure.com",
      models: ["gpt-4o", "o4-*"],
      api_key_env: null,
      api_version: "2024-10-21",
      region: null,
    });
  });

  it("refuses bad names, URLs and variable names with a message", () => {
    const ok = { ...providerForm(), name: "p", base_url: "https://example.com" };
    expect(providerBody({ ...ok, name: "" }, false).error).toMatch(/^Name:/);
    expect(providerBody({ ...ok, name: "a__b" }, false).error).toMatch(/^Name:/);
    expect(providerBody({ ...ok, name: "-a" }, false).error).toMatch(/^Name:/);
    expect(providerBody({ ...ok, base_url: "ftp://example.com" }, false).error).toMatch(/^Base URL:/);
    expect(providerBody({ ...ok, api_key_env: "OPENAI KEY" }, false).error).toMatch(/^Key variable:/);
    expect(providerBody(ok, false).error).toBeUndefined();
  });

  it("says whether a key is set, never what it is", () => {
    expect(keyState(provider)).toBe("set");
    expect(keyState({ api_key: null })).toBe("not set");
  });
});

describe("model form", () => {
  const base = { ...modelForm(undefined, "openai"), name: "fast" };

  it("sends prices per million tokens as numbers, blanks as not set", () => {
    const { body } = modelBody({ ...base, input: "1.5", output: "6", cache_read: "0.15", cache_write: "", multiplier: "2", aliases: "quick, q" });
    expect(body).toEqual({
      name: "fast",
      provider: "openai",
      upstream_model: null,
      aliases: ["quick", "q"],
      input_per_mtok: 1.5,
      output_per_mtok: 6,
      cache_read_per_mtok: 0.15,
      cache_write_per_mtok: null,
      multiplier: 2,
    });
  });

  it("names the price that is wrong", () => {
    expect(modelBody({ ...base, output: "-1" }).error).toBe("Output price: must be a number from 0 to 100000000.");
    expect(modelBody({ ...base, cache_write: "abc" }).error).toMatch(/^Cache write price:/);
    expect(modelBody({ ...base, multiplier: "200000000" }).error).toMatch(/^Multiplier:/);
    expect(modelBody({ ...base, weight: "1.5" }).error).toMatch(/^Weight: must be a whole number/);
    expect(modelBody({ ...base, name: " " }).error).toMatch(/^Name:/);
    expect(modelBody({ ...base, provider: "" }).error).toMatch(/^Provider:/);
  });

  it("keeps a weight when given", () => {
    expect(modelBody({ ...base, weight: "3" }).body?.weight).toBe(3);
    expect(modelBody(base).body).not.toHaveProperty("weight");
  });

  it("round-trips a stored model", () => {
    const m: ModelView = { id: "m1", source: "store", name: "fast", provider: "openai", weight: 2, aliases: ["q"], input_per_mtok: 0.4, output_per_mtok: 1.6, multiplier: null };
    const f = modelForm(m);
    expect(f.input).toBe("0.4");
    expect(f.multiplier).toBe("");
    expect(modelBody(f).body).toMatchObject({ name: "fast", weight: 2, aliases: ["q"], input_per_mtok: 0.4, output_per_mtok: 1.6, multiplier: null });
  });
});

describe("budget form", () => {
  it("needs a limit in USD, tokens or both", () => {
    expect(budgetBody(budgetForm()).error).toBe("Give a limit in USD, in tokens, or both.");
    expect(budgetBody({ ...budgetForm(), limit_usd: "25" }).body).toMatchObject({ limit_usd: 25, limit_tokens: null });
    expect(budgetBody({ ...budgetForm(), limit_usd: "25", limit_tokens: "1000000" }).body).toMatchObject({ limit_usd: 25, limit_tokens: 1_000_000 });
  });

  it("refuses fractional tokens and negative dollars", () => {
    expect(budgetBody({ ...budgetForm(), limit_tokens: "10.5" }).error).toMatch(/^Limit in tokens: must be a whole number/);
    expect(budgetBody({ ...budgetForm(), limit_usd: "-3" }).error).toMatch(/^Limit in USD:/);
  });

  it("derives an id when none is given, and checks a given one", () => {
    expect(budgetId({ scope: "role", subject: "developer", period: "month" })).toBe("role-developer-month");
    expect(budgetId({ scope: "user", subject: "", period: "day" })).toBe("user-each-day");
    expect(budgetId({ scope: "user", subject: "a.b@example.com", period: "day" })).toBe("user-a-b-example-com-day");
    const { body } = budgetBody({ ...budgetForm(), scope: "role", subject: " developer ", limit_usd: "5" });
    expect(body).toEqual({ id: "role-developer-month", scope: "role", subject: "developer", period: "month", limit_usd: 5, limit_tokens: null });
    expect(budgetBody({ ...budgetForm(), id: "bad id", limit_usd: "5" }).error).toMatch(/^Id:/);
  });
});

describe("usage", () => {
  const row = (group: string, bucket: string, cost: number, requests = 1): UsageRow => ({
    group,
    label: group.toUpperCase(),
    bucket,
    requests,
    errors: 0,
    denials: 0,
    input_tokens: 10 * requests,
    output_tokens: 5 * requests,
    cost_usd: cost,
  });
  const rows = [row("a", "2026-05-01T00:00:00Z", 1), row("b", "2026-05-01T00:00:00Z", 3), row("a", "2026-05-02T00:00:00Z", 4, 2), row("c", "2026-05-02T00:00:00Z", 0.5)];

  it("charts the busiest groups, one value per bucket", () => {
    const lines = usageLines(pivot(rows, (r) => r.cost_usd), 2);
    expect(lines).toEqual([
      { name: "A", values: [1, 4] },
      { name: "B", values: [3, 0] },
    ]);
  });

  it("totals each group over the period, the most expensive first", () => {
    const t = totals(rows);
    expect(t.map((x) => x.group)).toEqual(["a", "b", "c"]);
    expect(t[0]).toMatchObject({ label: "A", requests: 3, input_tokens: 30, output_tokens: 15, cost_usd: 5 });
  });

  it("lays the report on every bucket of the period, quiet ones as zero", () => {
    const days = bucketsBetween("2026-04-30T13:10:00.5Z", "2026-05-03T08:00:00Z", "day");
    expect(days).toEqual(["2026-04-30T00:00:00Z", "2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"]);
    const t = onTimeline(pivot(rows, (r) => r.cost_usd), days);
    expect(t.buckets).toEqual(days);
    expect(t.rows.find((r) => r.group === "a")?.cells).toEqual([0, 1, 4, 0]);
    // A bucket the timeline lacks: the report is shown as it came.
    const odd = pivot([row("a", "2026-05-01T00:30:00Z", 1)], (r) => r.cost_usd);
    expect(onTimeline(odd, days)).toBe(odd);
  });

  it("keeps the latest buckets when there are too many", () => {
    const hours = bucketsBetween("2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z", "hour", 3);
    expect(hours).toEqual(["2026-05-01T21:00:00Z", "2026-05-01T22:00:00Z", "2026-05-01T23:00:00Z"]);
    expect(bucketsBetween("2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z", "hour")).toHaveLength(24);
    expect(bucketsBetween("nonsense", "2026-05-02T00:00:00Z", "hour")).toEqual([]);
  });

  it("labels buckets by day or hour", () => {
    expect(bucketLabel("2026-05-14T09:00:00Z", "day")).toBe("05-14");
    expect(bucketLabel("2026-05-14T09:00:00Z", "hour")).toBe("05-14 09:00");
  });

  it("shows dollars with cents, small amounts with more digits", () => {
    expect(usd(12.345)).toBe("$12.35");
    expect(usd(0)).toBe("$0.00");
    expect(usd(0.0042)).toBe("$0.0042");
    expect(usd(0.00017549)).toBe("$0.00018");
  });
});
