// The first administrator, created with the one-time token of the link the
// hub prints at start (`/setup#token=…`: the token never reaches a server log).
import { useEffect, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { errorText, Notice } from "../components/ui";

function readToken(): string {
  const t = new URLSearchParams(window.location.hash.slice(1)).get("token") ?? new URLSearchParams(window.location.search).get("token") ?? "";
  // Keep the token out of the address bar and history once read.
  if (window.location.hash || window.location.search) window.history.replaceState(null, "", "/setup");
  return t;
}

export function Setup({ onDone }: { onDone: () => void }) {
  const [token] = useState(readToken);
  const [needed, setNeeded] = useState<boolean>();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [again, setAgain] = useState("");
  const [error, setError] = useState<string>();
  useEffect(() => {
    api.get("/setup").then((s) => setNeeded(s.needed), (e) => setError(errorText(e)));
  }, []);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (password !== again) {
      setError("The passwords differ.");
      return;
    }
    try {
      await api.post("/setup", { token, username, password });
      onDone();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <main className="center" id="main">
      <form className="card narrow" onSubmit={submit} aria-labelledby="setup-title">
        <h1 id="setup-title">Set up Gatehouse</h1>
        {needed === false ? (
          <p role="status">
            Setup is already done. <a href="/">Sign in</a>.
          </p>
        ) : (
          <>
            <p>Create the first administrator. The link works once, for one hour after the hub started.</p>
            {!token && <p className="notice error">This page needs the link the hub printed at start (it ends with #token=…).</p>}
            <label>
              Username
              <input autoComplete="username" required maxLength={64} value={username} onChange={(e) => setUsername(e.target.value)} />
            </label>
            <label>
              Password (at least 12 characters)
              <input type="password" autoComplete="new-password" required minLength={12} value={password} onChange={(e) => setPassword(e.target.value)} />
            </label>
            <label>
              Repeat the password
              <input type="password" autoComplete="new-password" required minLength={12} value={again} onChange={(e) => setAgain(e.target.value)} />
            </label>
            <button type="submit" className="primary" disabled={!token}>
              Create administrator
            </button>
          </>
        )}
        <Notice text={error} kind="error" />
      </form>
    </main>
  );
}
