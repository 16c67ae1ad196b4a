import { describe, expect, it } from "vitest";
import { PERMISSIONS, permissionGroups, roleBody, roleForm, togglePermission, visibilityBody, visibilityForm, whoSees } from "./access";

describe("role form", () => {
  it("groups every permission by area, once", () => {
    const groups = permissionGroups();
    expect(groups.flatMap((g) => g.permissions)).toEqual([...PERMISSIONS]);
    expect(groups.find((g) => g.area === "keys")?.permissions).toEqual(["keys:read", "keys:write", "keys:own"]);
  });

  it("keeps permissions in list order as they are ticked", () => {
    let p = togglePermission([], "audit:read", true);
    p = togglePermission(p, "users:read", true);
    p = togglePermission(p, "audit:read", true);
    expect(p).toEqual(["users:read", "audit:read"]);
    expect(togglePermission(p, "users:read", false)).toEqual(["audit:read"]);
  });

  it("shapes a new role and a change", () => {
    const f = { name: " auditor ", description: " reads the log ", permissions: togglePermission([], "audit:read", true) };
    expect(roleBody(f, false)).toEqual({ body: { name: "auditor", description: "reads the log", permissions: ["audit:read"] } });
    expect(roleBody(f, true)).toEqual({ body: { description: "reads the log", permissions: ["audit:read"] } });
  });

  it("refuses bad or built-in names and empty roles", () => {
    const f = { ...roleForm(), permissions: togglePermission([], "audit:read", true) };
    expect(roleBody({ ...f, name: "Auditor" }, false).error).toMatch(/^Name: 1-64/);
    expect(roleBody({ ...f, name: "1st" }, false).error).toMatch(/^Name: 1-64/);
    expect(roleBody({ ...f, name: "viewer" }, false).error).toBe("Name: viewer is a built-in role; choose another name.");
    expect(roleBody({ ...f, name: "auditor", permissions: [] }, false).error).toBe("Pick at least one permission.");
    // The name is fixed on edit, so it is not checked.
    expect(roleBody({ ...f, name: "" }, true).error).toBeUndefined();
  });
});

describe("visibility", () => {
  it("sends roles and users as lists without blanks or repeats", () => {
    expect(visibilityBody({ backend: " github ", roles: "developer, ops,developer", users: "alice\nbob, " })).toEqual({
      backend: "github",
      body: { roles: ["developer", "ops"], users: ["alice", "bob"] },
    });
  });

  it("allows admins only, but needs a backend", () => {
    expect(visibilityBody({ backend: "github", roles: "", users: "" }).body).toEqual({ roles: [], users: [] });
    expect(visibilityBody({ backend: " ", roles: "a", users: "" }).error).toBe("Backend: pick one.");
  });

  it("round-trips and describes a restriction", () => {
    const v = { backend: "github", restricted: true, roles: ["developer"], users: ["alice"] };
    expect(visibilityForm(v)).toEqual({ backend: "github", roles: "developer", users: "alice" });
    expect(whoSees(v)).toBe("roles developer · users alice · admins");
    expect(whoSees({ restricted: true, roles: [], users: [] })).toBe("admins");
    expect(whoSees({ restricted: false, roles: [], users: [] })).toBe("everyone");
  });
});
