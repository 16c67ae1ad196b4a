// The shell: sign-in, role-aware navigation and the current page.
import { lazy, Suspense, useCallback, useEffect, useState, type ComponentType, type LazyExoticComponent } from "react";
import { api, ApiError, setCsrf, setUnauthorizedHandler } from "./api/client";
import { ErrorBox, Spinner } from "./components/ui";
import { Link, navigate, useLocation } from "./lib/router";
import { allowed, home, itemOf, NAV } from "./nav";
import { Login } from "./pages/Login";
import { Setup } from "./pages/Setup";
import { SessionContext, type Permission, type Session } from "./session";

// Each page is its own chunk, loaded when first visited.
const PAGES: Record<string, LazyExoticComponent<ComponentType>> = {
  "/": lazy(() => import("./pages/Overview")),
  "/backends": lazy(() => import("./pages/Backends")),
  "/agents": lazy(() => import("./pages/Agents")),
  "/tools": lazy(() => import("./pages/Tools")),
  "/policies": lazy(() => import("./pages/Policies")),
  "/audit": lazy(() => import("./pages/Audit")),
  "/users": lazy(() => import("./pages/Users")),
  "/keys": lazy(() => import("./pages/Keys")),
  "/ai": lazy(() => import("./pages/Ai")),
  "/limits": lazy(() => import("./pages/Limits")),
  "/connect": lazy(() => import("./pages/Connect")),
};

type State = { kind: "loading" } | { kind: "signed-out" } | { kind: "error"; error: Error } | { kind: "in"; session: Session };

export function App() {
  const { path } = useLocation();
  const [state, setState] = useState<State>({ kind: "loading" });

  const signOut = useCallback(async () => {
    try {
      await api.post("/auth/logout", undefined);
    } catch {
      // Signed out either way.
    }
    setCsrf(undefined);
    setState({ kind: "signed-out" });
  }, []);

  const load = useCallback(async () => {
    try {
      const [me, info] = await Promise.all([api.get("/me"), api.get("/info")]);
      setCsrf(me.csrf_token ?? undefined);
      const perms = new Set<Permission>(me.permissions);
      setState({ kind: "in", session: { me, info, can: (p) => perms.has(p), signOut } });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) setState({ kind: "signed-out" });
      else setState({ kind: "error", error: e as Error });
    }
  }, [signOut]);

  useEffect(() => {
    setUnauthorizedHandler(() => setState({ kind: "signed-out" }));
    if (path !== "/setup") void load();
    return () => setUnauthorizedHandler(undefined);
    // Only at start: later navigation keeps the session.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  if (path === "/setup") return <Setup onDone={() => { navigate("/", { replace: true }); void load(); }} />;
  if (state.kind === "loading") return <Spinner />;
  if (state.kind === "error")
    return (
      <main className="center">
        <ErrorBox error={state.error} retry={load} />
      </main>
    );
  if (state.kind === "signed-out") return <Login onSignedIn={load} />;
  return (
    <SessionContext.Provider value={state.session}>
      <Shell session={state.session} path={path} />
    </SessionContext.Provider>
  );
}

function Shell({ session, path }: { session: Session; path: string }) {
  const [menuOpen, setMenuOpen] = useState(false);
  const item = itemOf(path);
  const Page = item ? PAGES[item.path] : undefined;
  const permitted = item ? allowed(item, session.can) : false;
  useEffect(() => setMenuOpen(false), [path]);
  useEffect(() => {
    document.title = item ? `${item.label} · Gatehouse` : "Gatehouse";
  }, [item]);
  // Landing on a page one may not see (e.g. the overview for developers): go to the first one allowed.
  useEffect(() => {
    if (path === "/" && !permitted) navigate(home(session.can), { replace: true });
  }, [path, permitted, session.can]);
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button type="button" className="menu-toggle" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen((o) => !o)}>
          Menu
        </button>
        <Link href="/" className="brand">
          Gatehouse
        </Link>
        <span className="who">
          <span>
            {session.me.username} <span className="muted">({session.me.role})</span>
          </span>
          <button type="button" onClick={session.signOut}>
            Sign out
          </button>
        </span>
      </header>
      <nav id="nav" aria-label="Main" className={menuOpen ? "open" : ""}>
        <ul>
          {NAV.filter((n) => allowed(n, session.can)).map((n) => (
            <li key={n.path}>
              <Link href={n.path} aria-current={item?.path === n.path ? "page" : undefined}>
                {n.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" tabIndex={-1}>
        {!item || !Page ? (
          <section>
            <h1>Not found</h1>
            <p>
              There is no page at <code>{path}</code>. <Link href={home(session.can)}>Go to the start page</Link>.
            </p>
          </section>
        ) : !permitted ? (
          <section>
            <h1>Not allowed</h1>
            <p role="alert">
              Your role ({session.me.role}) may not open {item.label}. <Link href={home(session.can)}>Go to the start page</Link>.
            </p>
          </section>
        ) : (
          <Suspense fallback={<Spinner />}>
            <Page />
          </Suspense>
        )}
      </main>
    </div>
  );
}
