import { useState, type FormEvent } from "react";
import { api } from "../api/client";
import { ActionNotice, ConfirmButton, DataTable, editorDone, FormButtons, useAction } from "../components/crud";
import { Badge, errorText, Load, Notice, PageHeader, Time } from "../components/ui";
import { permissionGroups, roleBody, roleForm, togglePermission, type RoleForm, type RoleView } from "../lib/access";
import { useFilters, useLoad, type Loaded } from "../lib/hooks";
import { Link } from "../lib/router";
import { useSession } from "../session";

export default function Users() {
  const { can } = useSession();
  const users = useLoad(() => api.get("/users"), []);
  const roles = useLoad(() => api.get("/roles"), []);
  const [f, setF] = useFilters({ role: "" });
  const action = useAction();
  const write = can("users:write");
  const act = async (what: string, run: () => Promise<unknown>) => {
    if (await action.run(run, what)) users.reload();
  };
  const roleNames = (roles.data ?? []).map((r) => r.name);
  return (
    <section>
      <PageHeader title="Users & roles" />
      <ActionNotice action={action} />
      {write && <NewUser roles={roleNames} onCreated={(u) => act(`Created ${u}.`, async () => undefined)} />}
      <Load state={users} empty={(l) => l.length === 0}>
        {(list) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Role</th>
                  <th scope="col">State</th>
                  <th scope="col">Created</th>
                  <th scope="col">Keys</th>
                  {write && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {list.map((u) => (
                  <tr key={u.id}>
                    <td>{u.username}</td>
                    <td>
                      {write ? (
                        <select
                          aria-label={`Role of ${u.username}`}
                          value={u.role}
                          onChange={(e) => act(`${u.username} is now ${e.target.value}.`, () => api.patch("/users/{id}", { role: e.target.value }, { params: { id: u.id } }))}
                        >
                          {[...new Set([...roleNames, u.role])].map((r) => (
                            <option key={r}>{r}</option>
                          ))}
                        </select>
                      ) : (
                        u.role
                      )}
                    </td>
                    <td>{u.disabled ? <Badge kind="down">disabled</Badge> : <Badge kind="ready">active</Badge>}</td>
                    <td>
                      <Time iso={u.created_at} />
                    </td>
                    <td>{can("keys:read") && <Link href={`/keys?user=${encodeURIComponent(u.username)}`}>keys</Link>}</td>
                    {write && (
                      <td>
                        <button
                          type="button"
                          onClick={() =>
                            act(`${u.username} ${u.disabled ? "enabled" : "disabled"}.`, () => api.patch("/users/{id}", { disabled: !u.disabled }, { params: { id: u.id } }))
                          }
                        >
                          {u.disabled ? "Enable" : "Disable"}
                          <span className="sr-only"> {u.username}</span>
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Load>
      <Roles list={roles} editing={f.role} setEditing={(role) => setF({ role })} />
    </section>
  );
}

function NewUser({ roles, onCreated }: { roles: string[]; onCreated: (name: string) => void }) {
  const [username, setUsername] = useState("");
  const [role, setRole] = useState("developer");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      await api.post("/users", { username: username.trim(), role, password: password || null });
      onCreated(username.trim());
      setUsername("");
      setPassword("");
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card inline-form" onSubmit={submit} aria-label="Create a user">
      <label>
        Username
        <input required value={username} onChange={(e) => setUsername(e.target.value)} />
      </label>
      <label>
        Role
        <select value={role} onChange={(e) => setRole(e.target.value)}>
          {(roles.length ? roles : ["admin", "operator", "developer", "viewer"]).map((r) => (
            <option key={r}>{r}</option>
          ))}
        </select>
      </label>
      <label>
        Password (optional: console sign-in)
        <input type="password" autoComplete="new-password" minLength={12} value={password} onChange={(e) => setPassword(e.target.value)} />
      </label>
      <button type="submit" className="primary">
        Create user
      </button>
      <Notice text={error} kind="error" />
    </form>
  );
}

function Roles({ list, editing, setEditing }: { list: Loaded<RoleView[]>; editing: string; setEditing: (name: string) => void }) {
  const { can } = useSession();
  const write = can("roles:write");
  const action = useAction();
  const current = list.data?.find((r) => r.name === editing && !r.built_in);
  const remove = async (r: RoleView) => {
    if (await action.run(() => api.del("/roles/{name}", { params: { name: r.name } }), `Deleted role ${r.name}.`)) {
      if (editing === r.name) setEditing("");
      list.reload();
    }
  };
  return (
    <>
      <div className="section-head">
        <h2>Roles</h2>
        {write && editing !== "new" && (
          <button type="button" onClick={() => setEditing("new")}>
            New role
          </button>
        )}
      </div>
      <p className="muted small">Built-in roles are fixed; custom roles hold any set of permissions.</p>
      <ActionNotice action={action} />
      {write && (editing === "new" || current) && (
        <RoleEditor
          key={editing}
          initial={current}
          onDone={editorDone(() => setEditing(""), action, () => list.reload())}
        />
      )}
      <Load state={list}>
        {(rs) => (
          <DataTable
            label="Roles and their permissions"
            rows={rs}
            rowKey={(r) => r.name}
            selected={editing}
            columns={[
              {
                header: "Role",
                cell: (r) => (
                  <>
                    {r.name} {r.built_in && <Badge kind="idle">built-in</Badge>}
                    <div className="muted small">{r.description}</div>
                  </>
                ),
              },
              { header: "Permissions", wrap: true, cell: (r) => <span className="small">{r.permissions.join(", ") || "none"}</span> },
            ]}
            actions={
              write
                ? (r) =>
                    r.built_in ? (
                      <span className="muted small">fixed</span>
                    ) : (
                      <>
                        <button type="button" onClick={() => setEditing(r.name)}>
                          Edit<span className="sr-only"> role {r.name}</span>
                        </button>
                        <ConfirmButton
                          label="Delete"
                          what={`role ${r.name}`}
                          question={`Delete ${r.name}? Only a role nobody has can be deleted.`}
                          disabled={action.busy}
                          onConfirm={() => remove(r)}
                        />
                      </>
                    )
                : undefined
            }
          />
        )}
      </Load>
    </>
  );
}

function RoleEditor({ initial, onDone }: { initial?: RoleView; onDone: (saved?: string) => void }) {
  const { can } = useSession();
  const [form, setForm] = useState<RoleForm>(roleForm(initial));
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (initial) {
      const { body, error } = roleBody(form, true);
      if (!body) return action.fail(error ?? "Check the form.");
      if (await action.run(() => api.put("/roles/{name}", body, { params: { name: initial.name } }))) onDone(`Saved role ${initial.name}.`);
    } else {
      const { body, error } = roleBody(form, false);
      if (!body) return action.fail(error ?? "Check the form.");
      if (await action.run(() => api.post("/roles", body))) onDone(`Created role ${body.name}.`);
    }
  };
  const title = initial ? `Edit role ${initial.name}` : "New role";
  return (
    <form className="card form" onSubmit={submit} aria-label={title}>
      <h3>{title}</h3>
      <div className="grid2">
        <label>
          Role name
          <input required value={form.name} disabled={!!initial} onChange={(e) => setForm({ ...form, name: e.target.value })} placeholder="auditor" />
        </label>
        <label>
          Description
          <input value={form.description} onChange={(e) => setForm({ ...form, description: e.target.value })} />
        </label>
      </div>
      <p className="muted small">You can grant only permissions you hold.</p>
      <div className="perm-groups">
        {permissionGroups().map((g) => (
          <fieldset key={g.area}>
            <legend>{g.area}</legend>
            {g.permissions.map((p) => (
              <label key={p} className="check">
                <input
                  type="checkbox"
                  checked={form.permissions.includes(p)}
                  disabled={!can(p)}
                  onChange={(e) => setForm({ ...form, permissions: togglePermission(form.permissions, p, e.target.checked) })}
                />{" "}
                {p}
              </label>
            ))}
          </fieldset>
        ))}
      </div>
      <ActionNotice action={action} />
      <FormButtons busy={action.busy} submit={initial ? "Save role" : "Create role"} onCancel={() => onDone()} />
    </form>
  );
}
