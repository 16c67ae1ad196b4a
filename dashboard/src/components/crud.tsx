// The pieces every editable list repeats: an action's busy state and notice,
// a delete that asks first, and a table of records with a row of actions.
import { useCallback, useEffect, useRef, useState, type KeyboardEvent, type ReactNode } from "react";
import { errorText, Notice } from "./ui";

export interface NoticeState {
  text: string;
  kind: "ok" | "error";
}

export interface Action {
  /** True while an action runs: disable its buttons. */
  busy: boolean;
  notice: NoticeState | undefined;
  /** Runs `f`; on success shows `done` (if any), on failure the error. Resolves to whether it succeeded. */
  run: (f: () => Promise<unknown>, done?: string) => Promise<boolean>;
  /** Shows `text` as an error without running anything (e.g. a validation message). */
  fail: (text: string) => void;
  /** Shows `text` as a success. */
  succeed: (text: string) => void;
}

/** Busy state and notice for the actions of a page or a form. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<NoticeState>();
  const run = useCallback(async (f: () => Promise<unknown>, done?: string) => {
    setBusy(true);
    setNotice(undefined);
    try {
      await f();
      if (done) setNotice({ text: done, kind: "ok" });
      return true;
    } catch (e) {
      setNotice({ text: errorText(e), kind: "error" });
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  const fail = useCallback((text: string) => setNotice({ text, kind: "error" }), []);
  const succeed = useCallback((text: string) => setNotice({ text, kind: "ok" }), []);
  return { busy, notice, run, fail, succeed };
}

/**
 * The `onDone` of an editor: closes it with `close`, and when it saved
 * (`text` says what) shows that and runs `then` (e.g. reloads the list).
 */
export function editorDone(close: () => void, action: Pick<Action, "succeed">, then: () => void) {
  return (text?: string) => {
    close();
    if (text) {
      action.succeed(text);
      then();
    }
  };
}

/** The notice of `action`, if any. */
export function ActionNotice({ action }: { action: Pick<Action, "notice"> }) {
  return <Notice {...(action.notice ?? { kind: "ok" })} />;
}

/**
 * A destructive button that asks in place before acting: the first press
 * shows `question` with "Yes" and "Cancel" (focus on "Yes"; Escape cancels).
 * `what` names the record for screen readers ("Delete" alone is ambiguous in a table).
 */
export function ConfirmButton(props: { label: string; what: string; question: string; onConfirm: () => void; disabled?: boolean }) {
  const { label, what, question, onConfirm, disabled } = props;
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  const first = useRef<HTMLButtonElement>(null);
  const returnFocus = useRef(false);
  useEffect(() => {
    if (asking) yes.current?.focus();
    else if (returnFocus.current) {
      returnFocus.current = false;
      first.current?.focus();
    }
  }, [asking]);
  const cancel = () => {
    returnFocus.current = true;
    setAsking(false);
  };
  const escape = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.preventDefault();
      cancel();
    }
  };
  if (!asking)
    return (
      <button ref={first} type="button" className="danger" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
        <span className="sr-only"> {what}</span>
      </button>
    );
  return (
    <span className="confirm" role="group" aria-label={`Confirm: ${label} ${what}`} onKeyDown={escape}>
      <span>{question}</span>
      <button
        ref={yes}
        type="button"
        className="danger"
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        Yes, {label.toLowerCase()}
        <span className="sr-only"> {what}</span>
      </button>
      <button type="button" onClick={cancel}>
        Cancel
      </button>
    </span>
  );
}

/** One column of a [`DataTable`]. */
export interface Column<T> {
  header: ReactNode;
  cell: (row: T) => ReactNode;
  /** Right-aligned numbers. */
  num?: boolean;
  /** Long text that may wrap. */
  wrap?: boolean;
}

/**
 * A table of records: one row per item, an "Actions" column when `actions`
 * is given, the row of `selected` highlighted. `label` names the table for
 * screen readers.
 */
export function DataTable<T>(props: {
  label: string;
  rows: readonly T[];
  rowKey: (row: T) => string;
  columns: Column<T>[];
  actions?: (row: T) => ReactNode;
  selected?: string;
}) {
  const { label, rows, rowKey, columns, actions, selected } = props;
  const cls = (c: Column<T>) => [c.num && "num", c.wrap && "wrap"].filter(Boolean).join(" ") || undefined;
  return (
    <div className="table-wrap">
      <table>
        <caption className="sr-only">{label}</caption>
        <thead>
          <tr>
            {columns.map((c, i) => (
              <th key={i} scope="col" className={c.num ? "num" : undefined}>
                {c.header}
              </th>
            ))}
            {actions && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => {
            const key = rowKey(r);
            return (
              <tr key={key} data-row={key} className={key === selected ? "selected" : undefined}>
                {columns.map((c, i) => (
                  <td key={i} className={cls(c)}>
                    {c.cell(r)}
                  </td>
                ))}
                {actions && <td className="row-actions">{actions(r)}</td>}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** A form's submit and cancel buttons, disabled while it is busy. */
export function FormButtons({ busy, submit, onCancel }: { busy: boolean; submit: string; onCancel?: () => void }) {
  return (
    <div className="actions">
      <button type="submit" className="primary" disabled={busy}>
        {submit}
      </button>
      {onCancel && (
        <button type="button" onClick={onCancel} disabled={busy}>
          Cancel
        </button>
      )}
    </div>
  );
}
