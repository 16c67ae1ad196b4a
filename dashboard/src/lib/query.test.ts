import { describe, expect, it } from "vitest";
import { apiQuery, isoToLocal, localToIso, parseFilters, toSearch } from "./query";
import { AUDIT_FILTERS } from "./audit";

describe("filters in the query string", () => {
  const spec = { q: "", backend: "", live: "1" };

  it("reads known keys, keeps defaults for the rest and ignores unknown ones", () => {
    expect(parseFilters("?q=echo&other=x", spec)).toEqual({ q: "echo", backend: "", live: "1" });
    expect(parseFilters("", spec)).toEqual(spec);
    expect(parseFilters("?live=0&backend=a%20b", spec)).toEqual({ q: "", backend: "a b", live: "0" });
  });

  it("writes only what differs from the defaults, in a stable order", () => {
    expect(toSearch({ q: "", backend: "", live: "1" }, spec)).toBe("");
    expect(toSearch({ live: "0", backend: "fixture", q: " echo " }, spec)).toBe("?q=echo&backend=fixture&live=0");
  });

  it("round-trips every audit filter, wildcards and times included", () => {
    const f = { ...AUDIT_FILTERS, user: "alice", tool: "fixture__*", decision: "deny", from: "2026-01-02T03:04:00.000Z" };
    const back = parseFilters(toSearch(f, AUDIT_FILTERS), AUDIT_FILTERS);
    expect(back).toEqual(f);
  });

  it("drops empty values from API queries", () => {
    expect(apiQuery({ a: "", b: " x ", c: "y" })).toEqual({ b: "x", c: "y" });
  });

  it("converts datetime-local values to UTC and back", () => {
    const iso = localToIso("2026-03-04T05:06");
    expect(iso).toMatch(/^2026-03-0[345]T\d\d:06:00\.000Z$/);
    expect(isoToLocal(iso)).toBe("2026-03-04T05:06");
    expect(localToIso("")).toBe("");
    expect(localToIso("nonsense")).toBe("");
    expect(isoToLocal("nonsense")).toBe("");
  });
});
