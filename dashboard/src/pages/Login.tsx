import { useState, type FormEvent } from "react";
import { api } from "../api/client";
import { errorText, Notice } from "../components/ui";

export function Login({ onSignedIn }: { onSignedIn: () => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.post("/auth/login", { username, password });
      onSignedIn();
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };
  return (
    <main className="center" id="main">
      <form className="card narrow" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Sign in to Gatehouse</h1>
        <label>
          Username
          <input name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        </label>
        <Notice text={error} kind="error" />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <p className="muted small">
          No account yet? An administrator creates one; the first administrator comes from the setup link the hub prints at start, or{" "}
          <code>gateway-server admin create</code>.
        </p>
      </form>
    </main>
  );
}
