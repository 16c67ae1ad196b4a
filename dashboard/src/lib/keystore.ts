// The API key created last in this tab: kept in memory only (never in
// storage), so "Connect a client" can fill it in right after creation.
let last: string | undefined;

export function rememberKey(key: string): void {
  last = key;
}

export function rememberedKey(): string | undefined {
  return last;
}
