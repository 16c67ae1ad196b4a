import { useState, type FormEvent } from "react";
import { api, type Schemas } from "../api/client";
import { Badge, errorText, Load, Notice, PageHeader, Time } from "../components/ui";
import { useLoad } from "../lib/hooks";
import { Link } from "../lib/router";
import { useSession } from "../session";

export default function Users() {
  const { can } = useSession();
  const users = useLoad(() => api.get("/users"), []);
  const roles = useLoad(() => api.get("/roles"), []);
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const write = can("users:write");
  const act = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
      setNotice({ text: what, kind: "ok" });
      users.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  const roleNames = (roles.data ?? []).map((r) => r.name);
  return (
    <section>
      <PageHeader title="Users & roles" />
      <Notice {...(notice ?? { kind: "ok" })} />
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
      <h2>Roles</h2>
      <Load state={roles}>
        {(rs) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Role</th>
                  <th scope="col">Permissions</th>
                </tr>
              </thead>
              <tbody>
                {rs.map((r: Schemas["RoleView"]) => (
                  <tr key={r.name}>
                    <td>
                      {r.name} {r.built_in && <Badge kind="idle">built-in</Badge>}
                      <div className="muted small">{r.description}</div>
                    </td>
                    <td className="small wrap">{r.permissions.join(", ")}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Load>
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
      {error && (
        <p className="notice error" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}
