// KEY=VALUE lines (backend env and headers) to and from objects.

/** "A=1\nB = two" as {A: "1", B: "two"}; blank lines skipped; a line without `=` is an error. */
export function parseKv(text: string, sep = "="): { value?: Record<string, string>; error?: string } {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf(sep);
    if (at <= 0) return { error: `line ${i + 1}: expected NAME${sep}VALUE` };
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return { value: out };
}

export function formatKv(m: Record<string, string> | undefined, sep = "="): string {
  return Object.entries(m ?? {})
    .map(([k, v]) => `${k}${sep}${v}`)
    .join("\n");
}
