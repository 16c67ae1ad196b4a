// Form fields to API values: numbers and lists typed as text, checked with a
// message that names the field.

/** A checked value, or the message saying what is wrong. */
export type Checked<T> = { value: T; error?: undefined } | { value?: undefined; error: string };

export interface NumberRule {
  min?: number;
  max?: number;
  /** Whole numbers only. */
  integer?: boolean;
}

/** `text` as a number within the rule; blank or anything else is an error naming `label`. */
export function requiredNumber(label: string, text: string, rule: NumberRule = {}): Checked<number> {
  const t = text.trim();
  const { min = 0, max = Number.MAX_SAFE_INTEGER, integer = false } = rule;
  if (t === "") return { error: `${label}: required.` };
  const n = Number(t);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    return { error: `${label}: must be ${integer ? "a whole number" : "a number"} from ${min} to ${max}.` };
  }
  return { value: n };
}

/** Like [`requiredNumber`], but blank is `null` (the API's "not set"). */
export function optionalNumber(label: string, text: string, rule: NumberRule = {}): Checked<number | null> {
  return text.trim() === "" ? { value: null } : requiredNumber(label, text, rule);
}

/** Blank as `null`, anything else trimmed. */
export function optionalText(text: string): string | null {
  const t = text.trim();
  return t === "" ? null : t;
}

/** "a, b\nc,, a" as ["a", "b", "c"]: split on commas and newlines, trimmed, blanks and repeats dropped. */
export function uniqueList(text: string): string[] {
  return [
    ...new Set(
      text
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter((s) => s !== ""),
    ),
  ];
}

/** A number for a form field: "" for `null`/`undefined`. */
export function numberText(v: number | null | undefined): string {
  return v === null || v === undefined ? "" : String(v);
}
