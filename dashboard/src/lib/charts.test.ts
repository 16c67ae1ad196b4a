import { describe, expect, it } from "vitest";
import { errorRate, formatValue, latencyLines, linePath, maxOf, niceMax, ratePerMinute, type Point } from "./charts";
import { pivot } from "./usage";
import { mergeLive, outcome, type AuditRecord } from "./audit";

const p = (requests: number, errors: number, p50: number | null = null, p99: number | null = null): Point => ({
  ts: "2026-01-01T00:00:00Z",
  requests,
  errors,
  denials: 0,
  p50_ms: p50,
  p99_ms: p99,
});

describe("chart data shaping", () => {
  it("turns counts per step into requests per minute", () => {
    expect(ratePerMinute([p(30, 0), p(0, 0)], 30).values).toEqual([60, 0]);
    expect(ratePerMinute([p(5, 0)], 3600).values).toEqual([0.08]);
    expect(ratePerMinute([p(5, 0)], 0).values).toEqual([0]);
  });

  it("gives an error rate only where there were requests", () => {
    expect(errorRate([p(4, 1), p(0, 0), p(3, 3)]).values).toEqual([25, null, 100]);
  });

  it("keeps latency gaps as gaps", () => {
    const [p50, p99] = latencyLines([p(1, 0, 2, 9), p(0, 0)]);
    expect(p50.values).toEqual([2, null]);
    expect(p99.values).toEqual([9, null]);
  });

  it("picks nice axis maxima", () => {
    expect(niceMax(0)).toBe(1);
    expect(niceMax(NaN)).toBe(1);
    expect(niceMax(7)).toBe(10);
    expect(niceMax(0.3)).toBe(0.5);
    expect(niceMax(120)).toBe(200);
    expect(niceMax(2.2)).toBe(2.5);
    expect(maxOf([{ name: "a", values: [1, null, 4] }, { name: "b", values: [3] }])).toBe(4);
  });

  it("draws lines that break at gaps and keep lone points visible", () => {
    expect(linePath([], 100, 10, 1)).toBe("");
    expect(linePath([0, 5, 10], 100, 10, 10)).toBe("M0,10 L50,5 L100,0");
    expect(linePath([10, null, 5, 5], 90, 10, 10)).toBe("M0,0h0.01 M60,5 L90,5");
    expect(linePath([20], 100, 10, 10)).toBe("M50,0h0.01");
  });

  it("labels values shortly", () => {
    expect(formatValue(1500)).toBe("1.5k");
    expect(formatValue(2_000_000)).toBe("2M");
    expect(formatValue(3.14159)).toBe("3.14");
  });

  it("pivots usage rows by bucket, busiest group first", () => {
    const row = (group: string | null, bucket: string, cost: number) => ({
      group,
      label: group,
      bucket,
      requests: 1,
      errors: 0,
      denials: 0,
      input_tokens: 0,
      output_tokens: 0,
      cost_usd: cost,
    });
    const t = pivot([row("a", "2026-01-02", 1), row("b", "2026-01-01", 5), row("a", "2026-01-01", 2), row(null, "2026-01-02", 0.5)], (r) => r.cost_usd);
    expect(t.buckets).toEqual(["2026-01-01", "2026-01-02"]);
    expect(t.rows.map((r) => [r.group, r.cells, r.total])).toEqual([
      ["b", [5, 0], 5],
      ["a", [2, 1], 3],
      ["(none)", [0, 0.5], 0.5],
    ]);
  });
});

describe("the live audit timeline", () => {
  const rec = (seq: number, extra: Partial<AuditRecord> = {}) => ({ id: String(seq), seq, ts: "", kind: "mcp", prev_hash: "", hash: "", ...extra }) as AuditRecord;

  it("puts new records on top, once, and bounds the list", () => {
    const shown = [rec(3), rec(2), rec(1)];
    expect(mergeLive(shown, [rec(5), rec(4), rec(3)], 10).map((r) => r.seq)).toEqual([5, 4, 3, 2, 1]);
    expect(mergeLive(shown, [rec(4)], 2).map((r) => r.seq)).toEqual([4, 3]);
  });

  it("names the outcome", () => {
    expect(outcome(rec(1, { decision: "deny", status: "error" }))).toBe("denied");
    expect(outcome(rec(1, { status: "error" }))).toBe("error");
    expect(outcome(rec(1, { status: "ok", decision: "allow" }))).toBe("ok");
    expect(outcome(rec(1))).toBe("none");
  });
});
