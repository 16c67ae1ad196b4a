import { useState, type FormEvent } from "react";
import { api } from "../api/client";
import { Chart } from "../components/Chart";
import { ActionNotice, ConfirmButton, DataTable, editorDone, FormButtons, useAction } from "../components/crud";
import { Load, PageHeader, Snippet } from "../components/ui";
import {
  BUDGET_ALERTS,
  bucketsBetween,
  budgetBody,
  budgetForm,
  budgetId,
  bucketLabel,
  DEFAULT_BASE_URL,
  keyState,
  metricOf,
  modelBody,
  onTimeline,
  modelForm,
  price,
  PROVIDER_KINDS,
  providerBody,
  providerForm,
  totals,
  usageLines,
  usd,
  type BudgetForm,
  type BudgetView,
  type ModelForm,
  type ModelView,
  type ProviderForm,
  type ProviderView,
} from "../lib/ai";
import { formatValue } from "../lib/charts";
import { useFilters, useLoad, type Loaded } from "../lib/hooks";
import { pivot } from "../lib/usage";
import { useSession } from "../session";

const DAY_MS = 86_400_000;

const FILTERS = { group_by: "user", days: "7", bucket: "day", metric: "cost", provider: "", model: "", budget: "" };

export default function Ai() {
  const { can } = useSession();
  const [f, setF] = useFilters(FILTERS);
  const seeCatalog = can("backends:read");
  const providers = useLoad(() => (seeCatalog ? api.get("/ai/providers") : Promise.resolve([])), [seeCatalog]);
  const models = useLoad(() => (seeCatalog ? api.get("/ai/models") : Promise.resolve([])), [seeCatalog]);
  // Usage and budgets load in their sections: a new tick reloads them.
  const [tick, setTick] = useState(0);
  const refresh = () => {
    providers.reload();
    models.reload();
  };
  return (
    <section>
      <PageHeader title="AI">
        <button
          type="button"
          onClick={() => {
            refresh();
            setTick((t) => t + 1);
          }}
        >
          Refresh
        </button>
      </PageHeader>
      {seeCatalog && providers.data?.length === 0 && <NotConfigured write={can("backends:write")} onAdd={() => setF({ provider: "new" })} />}
      {can("usage:read") && <Usage filters={f} setFilters={setF} tick={tick} />}
      {seeCatalog && (
        <>
          <Providers list={providers} editing={f.provider} setEditing={(provider) => setF({ provider })} onChange={refresh} />
          <Models list={models} providers={providers.data ?? []} editing={f.model} setEditing={(model) => setF({ model })} />
        </>
      )}
      {can("limits:read") && <Budgets editing={f.budget} setEditing={(budget) => setF({ budget })} tick={tick} />}
    </section>
  );
}

function NotConfigured({ write, onAdd }: { write: boolean; onAdd: () => void }) {
  const { info } = useSession();
  const toml = `[[ai.providers]]\nname = "openai"\nkind = "openai"\nbase_url = "https://api.openai.com"\napi_key_env = "OPENAI_API_KEY"`;
  return (
    <div className="card" role="region" aria-labelledby="ai-setup-title">
      <h2 id="ai-setup-title">AI is not configured</h2>
      <p>
        No AI provider is set up, so requests to <code>{info.ai_base_url}</code> have nowhere to go.
      </p>
      {write ? (
        <p>
          Add a provider (its kind, base URL and API key), then register models with their prices. Clients call the hub with an API key that has the AI surface.
        </p>
      ) : (
        <p>Ask an administrator to add a provider.</p>
      )}
      {write && (
        <p>
          <button type="button" className="primary" onClick={onAdd}>
            Add a provider
          </button>
        </p>
      )}
      <p>Or define one in the hub's config file (the key stays in an environment variable):</p>
      <Snippet text={toml} label="provider in the config file" />
    </div>
  );
}

// ---- usage -----------------------------------------------------------------------------

type Filters = Record<keyof typeof FILTERS, string>;

function Usage({ filters: f, setFilters: setF, tick }: { filters: Filters; setFilters: (f: Partial<Filters>) => void; tick: number }) {
  const groupBy = (["user", "key", "model", "provider"] as const).find((g) => g === f.group_by) ?? "user";
  const bucket = f.bucket === "hour" ? "hour" : "day";
  const days = Math.min(365, Math.max(1, Number(f.days) || 7));
  const usage = useLoad(() => {
    const to = new Date();
    const from = new Date(to.getTime() - days * DAY_MS);
    return api.get("/ai/usage", { query: { group_by: groupBy, bucket, from: from.toISOString(), to: to.toISOString() } });
  }, [groupBy, bucket, days, tick]);
  const metric = f.metric === "tokens" || f.metric === "requests" ? f.metric : "cost";
  const fmt = (v: number) => (metric === "cost" ? usd(v) : formatValue(v));
  return (
    <>
      <h2>Usage</h2>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Usage view">
        <label>
          By
          <select value={groupBy} onChange={(e) => setF({ group_by: e.target.value })}>
            <option value="user">user</option>
            <option value="key">key</option>
            <option value="model">model</option>
            <option value="provider">provider</option>
          </select>
        </label>
        <label>
          Period
          <select value={String(days)} onChange={(e) => setF({ days: e.target.value })}>
            <option value="1">1 day</option>
            <option value="7">7 days</option>
            <option value="30">30 days</option>
            <option value="90">90 days</option>
          </select>
        </label>
        <label>
          Per
          <select value={bucket} onChange={(e) => setF({ bucket: e.target.value })}>
            <option value="hour">hour</option>
            <option value="day">day</option>
          </select>
        </label>
        <label>
          Show
          <select value={metric} onChange={(e) => setF({ metric: e.target.value })}>
            <option value="cost">cost (USD)</option>
            <option value="tokens">tokens</option>
            <option value="requests">requests</option>
          </select>
        </label>
      </form>
      <Load state={usage} empty={(u) => u.rows.length === 0} emptyText="No AI requests in this period.">
        {(u) => {
          const t = onTimeline(pivot(u.rows, metricOf(metric), 3), bucketsBetween(u.from, u.to, bucket));
          return (
            <>
              {u.own_only && <p className="muted">Only your own requests are shown.</p>}
              <Chart
                title={`${metric === "cost" ? "Cost (USD)" : metric === "tokens" ? "Tokens" : "Requests"} per ${bucket} (UTC), busiest ${groupBy}s`}
                lines={usageLines(t)}
                labels={t.buckets.map((b) => bucketLabel(b, bucket))}
                format={fmt}
              />
              <DataTable
                label={`AI usage by ${groupBy} over ${days} days`}
                rows={totals(u.rows)}
                rowKey={(r) => r.group}
                columns={[
                  { header: groupBy, cell: (r) => r.label },
                  { header: "Requests", num: true, cell: (r) => r.requests.toLocaleString() },
                  { header: "Errors", num: true, cell: (r) => r.errors.toLocaleString() },
                  { header: "Input tokens", num: true, cell: (r) => r.input_tokens.toLocaleString() },
                  { header: "Output tokens", num: true, cell: (r) => r.output_tokens.toLocaleString() },
                  { header: "Cost", num: true, cell: (r) => <strong>{usd(r.cost_usd)}</strong> },
                ]}
              />
              {u.truncated && <p className="muted small">Only the busiest groups are listed.</p>}
              <p className="sr-only">Chart values: {t.rows.map((r) => `${r.label} ${fmt(r.total)}`).join(", ")}</p>
            </>
          );
        }}
      </Load>
    </>
  );
}

// ---- providers -------------------------------------------------------------------------

function Providers(props: { list: Loaded<ProviderView[]>; editing: string; setEditing: (name: string) => void; onChange: () => void }) {
  const { list, editing, setEditing, onChange } = props;
  const { can } = useSession();
  const write = can("backends:write");
  const action = useAction();
  const current = list.data?.find((p) => p.name === editing && p.source !== "config");
  const remove = async (p: ProviderView) => {
    if (await action.run(() => api.del("/ai/providers/{name}", { params: { name: p.name } }), `Deleted provider ${p.name}.`)) {
      if (editing === p.name) setEditing("");
      onChange();
    }
  };
  return (
    <>
      <div className="section-head">
        <h2>Providers</h2>
        {write && editing !== "new" && (
          <button type="button" onClick={() => setEditing("new")}>
            Add provider
          </button>
        )}
      </div>
      <ActionNotice action={action} />
      {write && (editing === "new" || current) && (
        <ProviderEditor
          key={editing}
          initial={current}
          onDone={editorDone(() => setEditing(""), action, () => onChange())}
        />
      )}
      <Load state={list} empty={(p) => p.length === 0} emptyText="No AI providers yet.">
        {(ps) => (
          <DataTable
            label="AI providers"
            rows={ps}
            rowKey={(p) => p.name}
            selected={editing}
            columns={[
              { header: "Name", cell: (p) => p.name },
              { header: "Kind", cell: (p) => PROVIDER_KINDS.find((k) => k.kind === p.kind)?.label ?? p.kind },
              { header: "Base URL", wrap: true, cell: (p) => <code>{p.base_url}</code> },
              {
                header: "API key",
                cell: (p) => (
                  <>
                    {keyState(p)}
                    {p.api_key_env && <span className="muted small block">from ${p.api_key_env}</span>}
                  </>
                ),
              },
              { header: "Model globs", wrap: true, cell: (p) => <span className="small">{p.models.join(", ") || "—"}</span> },
              { header: "Source", cell: (p) => p.source },
            ]}
            actions={
              write
                ? (p) =>
                    p.source === "config" ? (
                      <span className="muted small">config file</span>
                    ) : (
                      <>
                        <button type="button" onClick={() => setEditing(p.name)}>
                          Edit<span className="sr-only"> provider {p.name}</span>
                        </button>
                        <ConfirmButton
                          label="Delete"
                          what={`provider ${p.name}`}
                          question={`Delete ${p.name}? Its models stop working.`}
                          disabled={action.busy}
                          onConfirm={() => remove(p)}
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

function ProviderEditor({ initial, onDone }: { initial?: ProviderView; onDone: (saved?: string) => void }) {
  const [form, setForm] = useState<ProviderForm>(providerForm(initial));
  const set = <K extends keyof ProviderForm>(k: K, v: ProviderForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  const action = useAction();
  const editing = !!initial;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { body, error } = providerBody(form, editing);
    if (!body) return action.fail(error ?? "Check the form.");
    const ok = await action.run(() => (initial ? api.put("/ai/providers/{name}", body, { params: { name: initial.name } }) : api.post("/ai/providers", body)));
    if (ok) onDone(`Saved provider ${body.name}.`);
  };
  const title = initial ? `Edit provider ${initial.name}` : "Add an AI provider";
  return (
    <form className="card form" onSubmit={submit} aria-label={title}>
      <h3>{title}</h3>
      <div className="grid2">
        <label>
          Name
          <input required value={form.name} disabled={editing} onChange={(e) => set("name", e.target.value)} placeholder="openai" />
        </label>
        <label>
          Kind
          <select value={form.kind} onChange={(e) => set("kind", e.target.value as ProviderForm["kind"])}>
            {PROVIDER_KINDS.map((k) => (
              <option key={k.kind} value={k.kind}>
                {k.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Base URL
          <input required type="url" value={form.base_url} onChange={(e) => set("base_url", e.target.value)} placeholder={DEFAULT_BASE_URL[form.kind]} />
        </label>
        <label>
          API key{" "}
          <span className="muted small">
            {initial ? `(stored: ${keyState(initial)}; blank keeps it)` : "(stored encrypted, never shown again)"}
          </span>
          <input type="password" autoComplete="off" value={form.api_key} disabled={form.clear_key} onChange={(e) => set("api_key", e.target.value)} />
        </label>
        {initial?.api_key && (
          <label className="check">
            <input type="checkbox" checked={form.clear_key} onChange={(e) => set("clear_key", e.target.checked)} /> Remove the stored key
          </label>
        )}
        <label>
          Key variable <span className="muted small">(instead of a key: an environment variable on the hub)</span>
          <input value={form.api_key_env} onChange={(e) => set("api_key_env", e.target.value)} placeholder="OPENAI_API_KEY" />
        </label>
        <label>
          Model globs <span className="muted small">(comma-separated; routed here without a registration)</span>
          <input value={form.models} onChange={(e) => set("models", e.target.value)} placeholder="gpt-*, o4-*" />
        </label>
        {form.kind === "azure" && (
          <label>
            API version
            <input value={form.api_version} onChange={(e) => set("api_version", e.target.value)} placeholder="2024-10-21" />
          </label>
        )}
        {form.kind === "bedrock" && (
          <label>
            Region
            <input value={form.region} onChange={(e) => set("region", e.target.value)} placeholder="us-east-1" />
          </label>
        )}
      </div>
      <ActionNotice action={action} />
      <FormButtons busy={action.busy} submit={editing ? "Save provider" : "Add provider"} onCancel={() => onDone()} />
    </form>
  );
}

// ---- models ----------------------------------------------------------------------------

function Models(props: { list: Loaded<ModelView[]>; providers: ProviderView[]; editing: string; setEditing: (id: string) => void }) {
  const { list, providers, editing, setEditing } = props;
  const { can } = useSession();
  const write = can("backends:write");
  const action = useAction();
  const current = list.data?.find((m) => m.id === editing && m.source !== "config");
  const remove = async (m: ModelView) => {
    if (await action.run(() => api.del("/ai/models/{id}", { params: { id: m.id } }), `Deleted model ${m.name}.`)) {
      if (editing === m.id) setEditing("");
      list.reload();
    }
  };
  return (
    <>
      <div className="section-head">
        <h2>Models and prices</h2>
        {write && editing !== "new" && providers.length > 0 && (
          <button type="button" onClick={() => setEditing("new")}>
            Add model
          </button>
        )}
      </div>
      <p className="muted small">Prices are USD per million tokens; blank uses the built-in price (cache prices: the input price).</p>
      <ActionNotice action={action} />
      {write && (editing === "new" || current) && (
        <ModelEditor
          key={editing}
          initial={current}
          providers={providers}
          onDone={editorDone(() => setEditing(""), action, () => list.reload())}
        />
      )}
      <Load state={list} empty={(m) => m.length === 0} emptyText="No models registered: requests are routed by model name prefix.">
        {(ms) => (
          <DataTable
            label="AI models and prices"
            rows={ms}
            rowKey={(m) => m.id}
            selected={editing}
            columns={[
              {
                header: "Model",
                cell: (m) => (
                  <>
                    {m.name}
                    {m.upstream_model && m.upstream_model !== m.name && <span className="muted small block">→ {m.upstream_model}</span>}
                  </>
                ),
              },
              { header: "Provider", cell: (m) => m.provider },
              { header: "Input", num: true, cell: (m) => price(m.input_per_mtok) },
              { header: "Output", num: true, cell: (m) => price(m.output_per_mtok) },
              { header: "Cache read", num: true, cell: (m) => price(m.cache_read_per_mtok) },
              { header: "Cache write", num: true, cell: (m) => price(m.cache_write_per_mtok) },
              { header: "Multiplier", num: true, cell: (m) => (m.multiplier ?? 1).toString() },
              { header: "Aliases", wrap: true, cell: (m) => <span className="small">{(m.aliases ?? []).join(", ")}</span> },
            ]}
            actions={
              write
                ? (m) =>
                    m.source === "config" ? (
                      <span className="muted small">config file</span>
                    ) : (
                      <>
                        <button type="button" onClick={() => setEditing(m.id)}>
                          Edit<span className="sr-only"> model {m.name}</span>
                        </button>
                        <ConfirmButton
                          label="Delete"
                          what={`model ${m.name}`}
                          question={`Delete ${m.name}?`}
                          disabled={action.busy}
                          onConfirm={() => remove(m)}
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

function ModelEditor({ initial, providers, onDone }: { initial?: ModelView; providers: ProviderView[]; onDone: (saved?: string) => void }) {
  const [form, setForm] = useState<ModelForm>(modelForm(initial, providers[0]?.name));
  const set = <K extends keyof ModelForm>(k: K, v: ModelForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { body, error } = modelBody(form);
    if (!body) return action.fail(error ?? "Check the form.");
    const ok = await action.run(() => (initial ? api.put("/ai/models/{id}", body, { params: { id: initial.id } }) : api.post("/ai/models", body)));
    if (ok) onDone(`Saved model ${body.name}.`);
  };
  const title = initial ? `Edit model ${initial.name}` : "Add a model";
  const priceField = (k: "input" | "output" | "cache_read" | "cache_write", label: string) => (
    <label>
      {label} <span className="muted small">(USD / M tokens)</span>
      <input inputMode="decimal" value={form[k]} onChange={(e) => set(k, e.target.value)} />
    </label>
  );
  return (
    <form className="card form" onSubmit={submit} aria-label={title}>
      <h3>{title}</h3>
      <div className="grid3">
        <label>
          Name <span className="muted small">(what clients send)</span>
          <input required value={form.name} onChange={(e) => set("name", e.target.value)} placeholder="fast" />
        </label>
        <label>
          Provider
          <select value={form.provider} onChange={(e) => set("provider", e.target.value)}>
            {providers.map((p) => (
              <option key={p.name}>{p.name}</option>
            ))}
          </select>
        </label>
        <label>
          Provider's model id <span className="muted small">(blank: the name)</span>
          <input value={form.upstream_model} onChange={(e) => set("upstream_model", e.target.value)} />
        </label>
        <label className="span2">
          Aliases <span className="muted small">(comma-separated)</span>
          <input value={form.aliases} onChange={(e) => set("aliases", e.target.value)} />
        </label>
        <label>
          Weight <span className="muted small">(among deployments of one name)</span>
          <input type="number" min={0} value={form.weight} onChange={(e) => set("weight", e.target.value)} placeholder="1" />
        </label>
        {priceField("input", "Input price")}
        {priceField("output", "Output price")}
        <label>
          Multiplier <span className="muted small">(weight in token budgets)</span>
          <input inputMode="decimal" value={form.multiplier} onChange={(e) => set("multiplier", e.target.value)} placeholder="1" />
        </label>
        {priceField("cache_read", "Cache read price")}
        {priceField("cache_write", "Cache write price")}
      </div>
      <ActionNotice action={action} />
      <FormButtons busy={action.busy} submit={initial ? "Save model" : "Add model"} onCancel={() => onDone()} />
    </form>
  );
}

// ---- budgets ---------------------------------------------------------------------------

function Budgets({ editing, setEditing, tick }: { editing: string; setEditing: (id: string) => void; tick: number }) {
  const { can } = useSession();
  const write = can("limits:write");
  const list = useLoad(() => api.get("/ai/budgets"), [tick]);
  const action = useAction();
  const current = list.data?.find((b) => b.id === editing && b.source !== "config");
  const remove = async (b: BudgetView) => {
    if (await action.run(() => api.del("/ai/budgets/{id}", { params: { id: b.id } }), `Deleted budget ${b.id}.`)) {
      if (editing === b.id) setEditing("");
      list.reload();
    }
  };
  return (
    <>
      <div className="section-head">
        <h2>Budgets</h2>
        {write && editing !== "new" && (
          <button type="button" onClick={() => setEditing("new")}>
            Add budget
          </button>
        )}
      </div>
      <p className="muted small">
        A budget refuses AI requests once its limit is spent, until the period ends (UTC; weeks start on Monday). Alerts at {BUDGET_ALERTS.join(", ")} % of the limit.
      </p>
      <ActionNotice action={action} />
      {write && (editing === "new" || current) && (
        <BudgetEditor
          key={editing}
          initial={current}
          onDone={editorDone(() => setEditing(""), action, () => list.reload())}
        />
      )}
      <Load state={list} empty={(b) => b.length === 0} emptyText="No budgets: AI spending is not capped.">
        {(bs) => (
          <DataTable
            label="AI budgets"
            rows={bs}
            rowKey={(b) => b.id}
            selected={editing}
            columns={[
              { header: "Id", cell: (b) => b.id },
              { header: "Scope", cell: (b) => b.scope },
              { header: "Subject", cell: (b) => b.subject ?? <span className="muted">each {b.scope}</span> },
              { header: "Period", cell: (b) => b.period },
              { header: "USD", num: true, cell: (b) => (b.limit_usd === null || b.limit_usd === undefined ? "—" : usd(b.limit_usd)) },
              { header: "Tokens", num: true, cell: (b) => b.limit_tokens?.toLocaleString() ?? "—" },
              { header: "Source", cell: (b) => b.source },
            ]}
            actions={
              write
                ? (b) =>
                    b.source === "config" ? (
                      <span className="muted small">config file</span>
                    ) : (
                      <>
                        <button type="button" onClick={() => setEditing(b.id)}>
                          Edit<span className="sr-only"> budget {b.id}</span>
                        </button>
                        <ConfirmButton label="Delete" what={`budget ${b.id}`} question={`Delete ${b.id}?`} disabled={action.busy} onConfirm={() => remove(b)} />
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

function BudgetEditor({ initial, onDone }: { initial?: BudgetView; onDone: (saved?: string) => void }) {
  const [form, setForm] = useState<BudgetForm>(budgetForm(initial));
  const set = <K extends keyof BudgetForm>(k: K, v: BudgetForm[K]) => setForm((f) => ({ ...f, [k]: v }));
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { body, error } = budgetBody(form);
    if (!body) return action.fail(error ?? "Check the form.");
    const ok = await action.run(() => (initial ? api.put("/ai/budgets/{id}", body, { params: { id: initial.id } }) : api.post("/ai/budgets", body)));
    if (ok) onDone(`Saved budget ${body.id}.`);
  };
  const title = initial ? `Edit budget ${initial.id}` : "Add a budget";
  return (
    <form className="card form" onSubmit={submit} aria-label={title}>
      <h3>{title}</h3>
      <div className="grid3">
        <label>
          Scope
          <select value={form.scope} onChange={(e) => set("scope", e.target.value as BudgetForm["scope"])}>
            <option value="user">user</option>
            <option value="key">key</option>
            <option value="role">role</option>
          </select>
        </label>
        <label>
          Subject <span className="muted small">(a username, key id or role; blank: each one separately)</span>
          <input value={form.subject} onChange={(e) => set("subject", e.target.value)} />
        </label>
        <label>
          Period
          <select value={form.period} onChange={(e) => set("period", e.target.value as BudgetForm["period"])}>
            <option value="day">day</option>
            <option value="week">week</option>
            <option value="month">month</option>
          </select>
        </label>
        <label>
          Limit in USD
          <input inputMode="decimal" value={form.limit_usd} onChange={(e) => set("limit_usd", e.target.value)} />
        </label>
        <label>
          Limit in tokens <span className="muted small">(weighted by model multipliers)</span>
          <input inputMode="numeric" value={form.limit_tokens} onChange={(e) => set("limit_tokens", e.target.value)} />
        </label>
        <label>
          Id
          <input value={form.id} disabled={!!initial} onChange={(e) => set("id", e.target.value)} placeholder={budgetId(form)} />
        </label>
      </div>
      <ActionNotice action={action} />
      <FormButtons busy={action.busy} submit={initial ? "Save budget" : "Add budget"} onCancel={() => onDone()} />
    </form>
  );
}
