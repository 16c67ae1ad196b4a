// Shared pieces of the browser tests: launching Chromium, signing in, the
// accessibility check, MCP calls and screenshots.
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
export const HERE = dirname(fileURLToPath(import.meta.url));
export const DASHBOARD = join(HERE, "..");

/** A required environment variable. */
export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

export const CHROMIUM = process.env.GATEHOUSE_E2E_CHROMIUM || "/usr/bin/chromium";

/** Chromium with a fresh profile (removed by `close`). */
export async function launch({ width = 1280, height = 900 } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "gatehouse-e2e-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width, height },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const problems = [];
  const watch = (page) => {
    page.on("console", (m) => {
      // Any CSP violation means the build or the hub's policy is wrong.
      if (/Content[- ]Security[- ]Policy/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  };
  context.pages().forEach(watch);
  context.on("page", watch);
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    problems,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Signs in through the login page and waits for the shell. */
export async function signIn(page, base, username, password) {
  await page.goto(base + "/");
  await page.getByRole("heading", { name: "Sign in to Gatehouse" }).waitFor();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Main" }).waitFor();
}

const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core on the page (evaluated through the DevTools protocol, so the
 * page's CSP stays as strict as in production) and fails on serious or
 * critical violations.
 */
export async function axe(page, what) {
  const has = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!has) await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) throw new Error(`axe on ${what}: ${JSON.stringify(bad, null, 2)}`);
  return result.length;
}

/** Saves a full-page screenshot as `<dir>/<name>.png`. */
export async function shot(page, dir, name) {
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/** A JSON-RPC request to `/mcp` with `key`; returns the answer (JSON or the first SSE message). */
export async function mcp(base, key, method, params, session) {
  const headers = {
    authorization: `Bearer ${key}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2025-06-18",
  };
  if (session) headers["mcp-session-id"] = session;
  const r = await fetch(base + "/mcp", { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  const text = await r.text();
  const body = r.headers.get("content-type")?.startsWith("text/event-stream")
    ? JSON.parse(text.split("\n").find((l) => l.startsWith("data:") && l.includes('"id"')).slice(5))
    : JSON.parse(text);
  return { status: r.status, session: r.headers.get("mcp-session-id") ?? session, body };
}

/** An initialised MCP session with `key`: returns a `call(method, params)`. */
export async function mcpSession(base, key) {
  const init = await mcp(base, key, "initialize", {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "gatehouse-e2e", version: "1" },
  });
  if (init.status !== 200 || !init.body.result) throw new Error(`initialize failed: ${init.status} ${JSON.stringify(init.body)}`);
  const session = init.session;
  await fetch(base + "/mcp", {
    method: "POST",
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-protocol-version": "2025-06-18",
      "mcp-session-id": session,
    },
    body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }),
  });
  return (method, params) => mcp(base, key, method, params, session);
}

/** Calls the admin API with the page's session (cookie + CSRF token from /me). */
export async function apiInPage(page, method, path, body) {
  return page.evaluate(
    async ({ method, path, body }) => {
      const me = await (await fetch("/api/v1/me")).json();
      const r = await fetch("/api/v1" + path, {
        method,
        headers: { "content-type": "application/json", "x-csrf-token": me.csrf_token ?? "" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    { method, path, body },
  );
}

/** Polls `f` until it returns a truthy value (the hub's state changes asynchronously). */
export async function until(what, f, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
