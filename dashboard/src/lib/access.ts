// Who may do and see what: the custom role editor and backend visibility.
import type { Schemas } from "../api/client";
import { uniqueList } from "./forms";

export type Permission = Schemas["Permission"];
export type RoleView = Schemas["RoleView"];
export type VisibilityView = Schemas["VisibilityView"];

/** Every permission, in the order the role editor lists them. */
export const PERMISSIONS = [
  "users:read",
  "users:write",
  "roles:write",
  "keys:read",
  "keys:write",
  "keys:own",
  "backends:read",
  "backends:write",
  "tools:read",
  "tools:write",
  "policies:read",
  "policies:write",
  "agents:read",
  "agents:write",
  "audit:read",
  "limits:read",
  "limits:write",
  "usage:read",
  "settings:read",
  "settings:write",
  "mcp:use",
  "ai:use",
] as const satisfies readonly Permission[];

// A permission added to the API but missing above fails the type check here.
type Unlisted = Exclude<Permission, (typeof PERMISSIONS)[number]>;
const allListed: [Unlisted] extends [never] ? true : never = true;
void allListed;

/** Permissions grouped by what they are about ("users", "keys", ...), in list order. */
export function permissionGroups(): { area: string; permissions: Permission[] }[] {
  const out: { area: string; permissions: Permission[] }[] = [];
  for (const p of PERMISSIONS) {
    const area = p.split(":")[0];
    const g = out.find((x) => x.area === area);
    if (g) g.permissions.push(p);
    else out.push({ area, permissions: [p] });
  }
  return out;
}

export const BUILT_IN_ROLES = ["admin", "operator", "developer", "viewer"];

export interface RoleForm {
  name: string;
  description: string;
  permissions: Permission[];
}

export function roleForm(r?: RoleView): RoleForm {
  return { name: r?.name ?? "", description: r?.description ?? "", permissions: [...(r?.permissions ?? [])] };
}

/** `list` with `p` in or out, in the editor's order. */
export function togglePermission(list: readonly Permission[], p: Permission, on: boolean): Permission[] {
  const set = new Set(list);
  if (on) set.add(p);
  else set.delete(p);
  return PERMISSIONS.filter((x) => set.has(x));
}

/** The body for a new role (`editing` false: `POST /roles`) or a changed one (`PUT /roles/{name}`). */
export function roleBody(f: RoleForm, editing: false): { body?: Schemas["NewRole"]; error?: string };
export function roleBody(f: RoleForm, editing: true): { body?: Schemas["RoleUpdate"]; error?: string };
export function roleBody(f: RoleForm, editing: boolean): { body?: Schemas["NewRole"] | Schemas["RoleUpdate"]; error?: string } {
  const name = f.name.trim();
  if (!editing) {
    if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name)) return { error: "Name: 1-64 characters of a-z, 0-9, _ or -, starting with a letter." };
    if (BUILT_IN_ROLES.includes(name)) return { error: `Name: ${name} is a built-in role; choose another name.` };
  }
  if (f.permissions.length === 0) return { error: "Pick at least one permission." };
  const description = f.description.trim();
  const permissions = PERMISSIONS.filter((p) => f.permissions.includes(p));
  return { body: editing ? { description, permissions } : { name, description, permissions } };
}

/** The visibility editor's fields: lists as comma-separated text. */
export interface VisibilityForm {
  backend: string;
  roles: string;
  users: string;
}

export function visibilityForm(v?: VisibilityView): VisibilityForm {
  return { backend: v?.backend ?? "", roles: (v?.roles ?? []).join(", "), users: (v?.users ?? []).join(", ") };
}

/** The backend and the body of `PUT /visibility/{backend}`. Both lists empty is allowed: only admins see it. */
export function visibilityBody(f: VisibilityForm): { backend?: string; body?: Schemas["VisibilityBody"]; error?: string } {
  const backend = f.backend.trim();
  if (!backend) return { error: "Backend: pick one." };
  return { backend, body: { roles: uniqueList(f.roles), users: uniqueList(f.users) } };
}

/** Who sees a restricted backend, in words. */
export function whoSees(v: Pick<VisibilityView, "restricted" | "roles" | "users">): string {
  if (!v.restricted) return "everyone";
  const parts: string[] = [];
  if (v.roles.length) parts.push(`roles ${v.roles.join(", ")}`);
  if (v.users.length) parts.push(`users ${v.users.join(", ")}`);
  parts.push("admins");
  return parts.join(" · ");
}
