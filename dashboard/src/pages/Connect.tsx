import { useState } from "react";
import { api } from "../api/client";
import { errorText, PageHeader, Snippet } from "../components/ui";
import { useFilters } from "../lib/hooks";
import { rememberedKey, rememberKey } from "../lib/keystore";
import { snippets } from "../lib/snippets";
import { useSession } from "../session";

const PLACEHOLDER = "gk_YOUR_KEY";

export default function Connect() {
  const { info, can } = useSession();
  const [f, setF] = useFilters({ client: "claude-code" });
  const [key, setKey] = useState(rememberedKey());
  const [error, setError] = useState<string>();
  const all = snippets(info.public_url, key ?? PLACEHOLDER);
  const current = all.find((s) => s.id === f.client) ?? all[0];
  const create = async () => {
    setError(undefined);
    try {
      const c = await api.post("/keys", { name: `connect-${new Date().toISOString().slice(0, 10)}`, expires_in_days: 90 });
      rememberKey(c.key);
      setKey(c.key);
    } catch (e) {
      setError(errorText(e));
    }
  };
  return (
    <section>
      <PageHeader title="Connect a client" />
      <p>
        MCP endpoint: <code>{info.mcp_url}</code> · AI API: <code>{info.ai_base_url}</code>
      </p>
      {key ? (
        <p className="notice ok">Your new key is filled in below. It is shown only on this page, until you leave it.</p>
      ) : (
        <div className="notice">
          <span>The snippets show {PLACEHOLDER}: replace it with one of your keys, or </span>
          {can("keys:own") && (
            <button type="button" className="primary" onClick={create}>
              create a key for this
            </button>
          )}
          {error && <span role="alert"> {error}</span>}
        </div>
      )}
      <div className="tabs" role="tablist" aria-label="Clients">
        {all.map((s) => (
          <button
            key={s.id}
            type="button"
            role="tab"
            id={`tab-${s.id}`}
            aria-selected={s.id === current.id}
            aria-controls="client-panel"
            tabIndex={s.id === current.id ? 0 : -1}
            onClick={() => setF({ client: s.id })}
            onKeyDown={(e) => {
              const i = all.findIndex((x) => x.id === current.id);
              const next = e.key === "ArrowRight" ? all[(i + 1) % all.length] : e.key === "ArrowLeft" ? all[(i - 1 + all.length) % all.length] : undefined;
              if (next) {
                setF({ client: next.id });
                requestAnimationFrame(() => document.getElementById(`tab-${next.id}`)?.focus());
              }
            }}
          >
            {s.title}
          </button>
        ))}
      </div>
      <div id="client-panel" role="tabpanel" aria-labelledby={`tab-${current.id}`} className="card">
        <p>{current.where}</p>
        <Snippet text={current.text} label={`${current.title} setup`} />
      </div>
    </section>
  );
}
