// The dashboard's pages: path, label and what the caller needs to see them.
import type { Permission } from "./session";

export interface NavItem {
  path: string;
  label: string;
  /** Any one of these grants the page. */
  any: Permission[];
}

export const NAV: NavItem[] = [
  { path: "/", label: "Overview", any: ["audit:read"] },
  { path: "/backends", label: "Backends", any: ["backends:read"] },
  { path: "/agents", label: "Agents", any: ["agents:read"] },
  { path: "/tools", label: "Tools", any: ["tools:read"] },
  { path: "/policies", label: "Policies", any: ["policies:read"] },
  { path: "/audit", label: "Audit", any: ["audit:read"] },
  { path: "/users", label: "Users & roles", any: ["users:read"] },
  { path: "/keys", label: "API keys", any: ["keys:own", "keys:read"] },
  { path: "/ai", label: "AI", any: ["backends:read", "usage:read", "limits:read"] },
  { path: "/limits", label: "Limits & settings", any: ["limits:read"] },
  { path: "/connect", label: "Connect a client", any: [] },
];

/** The nav item of `path` (the longest matching prefix). */
export function itemOf(path: string): NavItem | undefined {
  if (path === "/") return NAV[0];
  return NAV.filter((n) => n.path !== "/" && (path === n.path || path.startsWith(n.path + "/"))).sort((a, b) => b.path.length - a.path.length)[0];
}

/** True when `can` grants `item`. */
export function allowed(item: NavItem, can: (p: Permission) => boolean): boolean {
  return item.any.length === 0 || item.any.some(can);
}

/** Where a signed-in user lands: the first page they may see. */
export function home(can: (p: Permission) => boolean): string {
  return NAV.find((n) => allowed(n, can))?.path ?? "/connect";
}
