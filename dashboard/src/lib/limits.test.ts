import { describe, expect, it } from "vitest";
import { limitBody, limitForm, maxText, usedPercent, type LimitRule } from "./limits";

const rule = (extra: Partial<LimitRule> = {}): LimitRule => ({
  id: "r1",
  source: "runtime",
  scope: "user",
  match: "alice",
  window: "minute",
  unit: "requests",
  max_requests: 60,
  max_tokens: null,
  enabled: true,
  ...extra,
});

describe("limit form", () => {
  it("sends max_requests for request rules and max_tokens for token rules, never both", () => {
    const f = limitForm(rule());
    expect(limitBody(f).body).toEqual({ scope: "user", match: "alice", window: "minute", enabled: true, max_requests: 60 });
    expect(limitBody({ ...f, unit: "tokens", max: "5000", window: "hour" }).body).toEqual({
      scope: "user",
      match: "alice",
      window: "hour",
      enabled: true,
      max_tokens: 5000,
    });
  });

  it("loads a token rule's maximum", () => {
    const f = limitForm(rule({ unit: "tokens", max_requests: null, max_tokens: 9000 }));
    expect(f.unit).toBe("tokens");
    expect(f.max).toBe("9000");
  });

  it("blank match means each subject", () => {
    expect(limitBody({ ...limitForm(), match: "  " }).body?.match).toBeNull();
  });

  it("names the unit in the message for a bad maximum", () => {
    expect(limitBody({ ...limitForm(), max: "0" }).error).toBe("Max requests: must be a whole number from 1 to 1000000000.");
    expect(limitBody({ ...limitForm(), unit: "tokens", max: "1.5" }).error).toMatch(/^Max tokens:/);
    expect(limitBody({ ...limitForm(), max: "" }).error).toBe("Max requests: required.");
  });

  it("describes maxima and usage", () => {
    expect(maxText(rule())).toBe("60 requests");
    expect(maxText(rule({ unit: "tokens", max_tokens: 5000 }))).toBe("5000 tokens");
    expect(usedPercent({ count: 15, max: 60 })).toBe(25);
    expect(usedPercent({ count: 90, max: 60 })).toBe(100);
    expect(usedPercent({ count: 0, max: 0 })).toBe(100);
  });
});
