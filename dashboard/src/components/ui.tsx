// Small shared pieces: load states, copy button, badges, page header.
import { useState, type ReactNode } from "react";
import type { Loaded } from "../lib/hooks";

/** Renders `children(data)` once loaded; a spinner, the error (with retry) or `empty` otherwise. */
export function Load<T>(props: { state: Loaded<T>; empty?: (d: T) => boolean; emptyText?: ReactNode; children: (d: T) => ReactNode }) {
  const { state } = props;
  if (state.error && state.data === undefined) return <ErrorBox error={state.error} retry={state.reload} />;
  if (state.data === undefined) return <Spinner />;
  if (props.empty?.(state.data)) return <p className="empty">{props.emptyText ?? "Nothing here yet."}</p>;
  return <>{props.children(state.data)}</>;
}

export function Spinner({ label = "Loading…" }: { label?: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      {label}
    </p>
  );
}

export function ErrorBox({ error, retry }: { error: Error; retry?: () => void }) {
  return (
    <div className="error" role="alert">
      <span>{error.message}</span>
      {retry && (
        <button type="button" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** A notice after an action: success or failure. */
export function Notice({ text, kind }: { text?: string; kind: "ok" | "error" }) {
  if (!text) return null;
  return (
    <p className={kind === "ok" ? "notice ok" : "notice error"} role={kind === "ok" ? "status" : "alert"}>
      {text}
    </p>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      setDone(false);
    }
  };
  return (
    <button type="button" className="copy" onClick={copy} aria-label={`${label} to clipboard`}>
      {done ? "Copied" : label}
    </button>
  );
}

/** Text to copy, shown as code, with its copy button. */
export function Snippet({ text, label }: { text: string; label: string }) {
  return (
    <div className="snippet">
      <pre tabIndex={0} aria-label={label}>
        <code>{text}</code>
      </pre>
      <CopyButton text={text} label={`Copy ${label}`} />
    </div>
  );
}

export function Badge({ kind, children }: { kind: string; children: ReactNode }) {
  return <span className={`badge badge-${kind}`}>{children}</span>;
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <header className="page-header">
      <h1>{title}</h1>
      {children && <div className="actions">{children}</div>}
    </header>
  );
}

/** Time like "2026-01-02 10:00:03" (local). */
export function Time({ iso }: { iso?: string | null }) {
  if (!iso) return <span className="muted">—</span>;
  const d = new Date(iso);
  return <time dateTime={iso}>{d.toLocaleString()}</time>;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
