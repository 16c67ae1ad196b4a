import { useState, type FormEvent } from "react";
import { api, type Schemas } from "../api/client";
import { ConfirmButton } from "../components/crud";
import { Badge, CopyButton, errorText, Load, Notice, PageHeader, Time } from "../components/ui";
import { useFilters, useLoad } from "../lib/hooks";
import { rememberKey } from "../lib/keystore";
import { splitList } from "../lib/rules";
import { Link } from "../lib/router";
import { useSession } from "../session";

export default function Keys() {
  const { can, me } = useSession();
  const [f, setF] = useFilters({ user: "" });
  const list = useLoad(() => api.get("/keys", { query: f.user ? { user: f.user } : {} }), [f.user]);
  const [created, setCreated] = useState<Schemas["CreatedKey"]>();
  const [notice, setNotice] = useState<{ text: string; kind: "ok" | "error" }>();
  const own = !f.user || f.user === me.username;
  const mayCreate = own ? can("keys:own") : can("keys:write");
  const revoke = async (k: Schemas["KeyView"]) => {
    try {
      await api.del("/keys/{id}", { params: { id: k.id } });
      setNotice({ text: `Revoked ${k.name}.`, kind: "ok" });
      list.reload();
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
    }
  };
  return (
    <section>
      <PageHeader title={own ? "API keys" : `API keys of ${f.user}`}>
        {can("keys:read") && (
          <label className="inline">
            User
            <input value={f.user} placeholder={me.username} onChange={(e) => setF({ user: e.target.value })} />
          </label>
        )}
      </PageHeader>
      <Notice {...(notice ?? { kind: "ok" })} />
      {mayCreate && (
        <NewKey
          user={own ? undefined : f.user}
          onCreated={(c) => {
            rememberKey(c.key);
            setCreated(c);
            list.reload();
          }}
        />
      )}
      {created && (
        <div className="card created" aria-live="polite">
          <h2>Key {created.record.name} created</h2>
          <p>Copy it now: it is shown only once.</p>
          <div className="snippet">
            <code className="secret" data-testid="new-key">
              {created.key}
            </code>
            <CopyButton text={created.key} label="Copy key" />
          </div>
          <p>
            <Link href="/connect">Set up a client with this key</Link>
          </p>
          <button type="button" onClick={() => setCreated(undefined)}>
            Done
          </button>
        </div>
      )}
      <Load state={list} empty={(l) => l.length === 0} emptyText="No keys yet.">
        {(keys) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Surfaces</th>
                  <th scope="col">Tools</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">State</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {keys.map((k) => (
                  <tr key={k.id}>
                    <td>{k.name}</td>
                    <td>
                      <code>{k.prefix}…</code>
                    </td>
                    <td>{k.surfaces.join(", ")}</td>
                    <td className="wrap small">{k.tools.join(", ")}</td>
                    <td>
                      <Time iso={k.expires_at} />
                    </td>
                    <td>
                      <Time iso={k.last_used_at} />
                    </td>
                    <td>{k.revoked_at ? <Badge kind="down">revoked</Badge> : <Badge kind="ready">active</Badge>}</td>
                    <td>
                      {!k.revoked_at && (
                        <ConfirmButton label="Revoke" what={k.name} question={`Revoke ${k.name} (${k.prefix}…)? Clients using it stop at once.`} onConfirm={() => revoke(k)} />
                      )}
                    </td>
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

function NewKey({ user, onCreated }: { user?: string; onCreated: (c: Schemas["CreatedKey"]) => void }) {
  const [name, setName] = useState("");
  const [mcp, setMcp] = useState(true);
  const [ai, setAi] = useState(true);
  const [tools, setTools] = useState("");
  const [days, setDays] = useState("90");
  const [error, setError] = useState<string>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    const surfaces = [mcp && "mcp", ai && "ai"].filter(Boolean) as string[];
    if (surfaces.length === 0) return setError("Pick at least one surface.");
    try {
      const allow = splitList(tools);
      onCreated(
        await api.post("/keys", {
          name: name.trim(),
          user: user ?? null,
          surfaces,
          tools: allow.length ? allow : undefined,
          expires_in_days: days ? Number(days) : null,
        }),
      );
      setName("");
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card form" onSubmit={submit} aria-label="Create an API key">
      <h2>Create a key</h2>
      <div className="grid3">
        <label>
          Key name
          <input required value={name} placeholder="laptop" onChange={(e) => setName(e.target.value)} />
        </label>
        <fieldset>
          <legend>Surfaces</legend>
          <label className="check">
            <input type="checkbox" checked={mcp} onChange={(e) => setMcp(e.target.checked)} /> MCP (/mcp)
          </label>
          <label className="check">
            <input type="checkbox" checked={ai} onChange={(e) => setAi(e.target.checked)} /> AI API (/v1)
          </label>
        </fieldset>
        <label>
          Tool allowlist (globs, comma-separated; empty: all)
          <input value={tools} placeholder="github__*, fs__read_*" onChange={(e) => setTools(e.target.value)} />
        </label>
        <label>
          Expires in (days; empty: never)
          <input type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} />
        </label>
      </div>
      <Notice text={error} kind="error" />
      <button type="submit" className="primary">
        Create key
      </button>
    </form>
  );
}
