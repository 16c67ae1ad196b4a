import { describe, expect, it } from "vitest";
import { numberText, optionalNumber, optionalText, requiredNumber, uniqueList } from "./forms";

describe("number fields", () => {
  it("reads numbers within the bounds, decimals and exponents included", () => {
    expect(requiredNumber("Price", " 1.5 ")).toEqual({ value: 1.5 });
    expect(requiredNumber("Price", "2e3")).toEqual({ value: 2000 });
    expect(requiredNumber("Price", "0")).toEqual({ value: 0 });
  });

  it("names the field and the bounds in the message", () => {
    expect(requiredNumber("Price", "")).toEqual({ error: "Price: required." });
    expect(requiredNumber("Price", "-1", { max: 10 }).error).toBe("Price: must be a number from 0 to 10.");
    expect(requiredNumber("Price", "11", { max: 10 }).error).toBe("Price: must be a number from 0 to 10.");
    expect(requiredNumber("Price", "1,5").error).toMatch(/^Price: must be a number/);
    expect(requiredNumber("Price", "Infinity").error).toMatch(/^Price:/);
    expect(requiredNumber("Max", "2.5", { min: 1, integer: true }).error).toBe(`Max: must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}.`);
  });

  it("treats blank optional fields as not set", () => {
    expect(optionalNumber("Price", "  ")).toEqual({ value: null });
    expect(optionalNumber("Price", "3")).toEqual({ value: 3 });
    expect(optionalNumber("Price", "x").error).toMatch(/^Price:/);
  });

  it("shows numbers back as text", () => {
    expect(numberText(null)).toBe("");
    expect(numberText(undefined)).toBe("");
    expect(numberText(0)).toBe("0");
    expect(numberText(1.25)).toBe("1.25");
  });
});

describe("text fields", () => {
  it("blank is null, the rest trimmed", () => {
    expect(optionalText("  ")).toBeNull();
    expect(optionalText(" a ")).toBe("a");
  });

  it("splits lists on commas and lines, dropping blanks and repeats", () => {
    expect(uniqueList("a, b\nc,, a ,")).toEqual(["a", "b", "c"]);
    expect(uniqueList("")).toEqual([]);
  });
});
