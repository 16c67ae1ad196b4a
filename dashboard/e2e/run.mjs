// The dashboard's browser tests against a real hub (started by the hub's
// integration test `dashboard`, which passes everything through the
// environment). Each flow prints `ok <name>` and saves a screenshot of the
// page it checked; any failure exits non-zero.
//
//   GATEHOUSE_E2E_URL          the hub, e.g. http://127.0.0.1:41234
//   GATEHOUSE_E2E_ADMIN        an admin's username; its password in GATEHOUSE_E2E_ADMIN_PASSWORD
//   GATEHOUSE_E2E_VIEWER       a viewer's username; its password in GATEHOUSE_E2E_VIEWER_PASSWORD
//   GATEHOUSE_E2E_FIXTURE      the fixture MCP server binary (added as a backend)
//   GATEHOUSE_E2E_AGENT        the gateway-agent binary
//   GATEHOUSE_E2E_SCREENSHOTS  where screenshots go
import { spawn, execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiInPage, axe, DASHBOARD, env, launch, mcpSession, shot, signIn, until } from "./lib.mjs";

const BASE = env("GATEHOUSE_E2E_URL");
const ADMIN = env("GATEHOUSE_E2E_ADMIN");
const ADMIN_PASSWORD = env("GATEHOUSE_E2E_ADMIN_PASSWORD");
const VIEWER = env("GATEHOUSE_E2E_VIEWER");
const VIEWER_PASSWORD = env("GATEHOUSE_E2E_VIEWER_PASSWORD");
const FIXTURE = env("GATEHOUSE_E2E_FIXTURE");
const AGENT = env("GATEHOUSE_E2E_AGENT");
const SHOTS = env("GATEHOUSE_E2E_SCREENSHOTS");
// Actions wait at most this long: a broken page fails fast instead of hanging the suite.
const STEP_MS = 20_000;

const passed = [];
function ok(name) {
  passed.push(name);
  console.log(`ok ${name}`);
}

/** The committed API types must be what the running hub's OpenAPI document generates. */
function checkSchema() {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-schema-"));
  try {
    const out = join(dir, "schema.d.ts");
    execFileSync(join(DASHBOARD, "node_modules/.bin/openapi-typescript"), [`${BASE}/api/v1/openapi.json`, "-o", out], { stdio: "pipe" });
    const committed = readFileSync(join(DASHBOARD, "src/api/schema.d.ts"), "utf8");
    if (readFileSync(out, "utf8") !== committed) {
      throw new Error("dashboard/src/api/schema.d.ts differs from the hub's OpenAPI document: regenerate it with `npm run gen:api` against a running hub");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  checkSchema();
  ok("schema.d.ts matches the hub's OpenAPI document");

  const b = await launch();
  const { page } = b;
  page.setDefaultTimeout(STEP_MS);
  let agent;
  try {
    // --- the page is served with its security headers and works under them
    const head = await fetch(BASE + "/tools?q=x");
    const csp = head.headers.get("content-security-policy") ?? "";
    if (!csp.includes("default-src 'self'") || head.headers.get("x-frame-options") !== "DENY") throw new Error(`security headers missing: ${csp}`);

    // --- sign in
    await page.goto(BASE + "/");
    await page.getByRole("heading", { name: "Sign in to Gatehouse" }).waitFor();
    await axe(page, "login");
    await shot(page, SHOTS, "01-login");
    await page.getByLabel("Username").fill(ADMIN);
    await page.getByLabel("Password").fill("wrong password!!");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    await page.getByLabel("Password").fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.getByText("Request rate").waitFor();
    await axe(page, "overview");
    await shot(page, SHOTS, "02-overview");
    ok("sign in (a wrong password is refused) and see the overview");

    // --- keyboard: the first Tab reaches the skip link, which moves focus to the page
    await page.keyboard.press("Tab");
    if ((await page.evaluate(() => document.activeElement?.textContent)) !== "Skip to content") throw new Error("the first Tab does not reach the skip link");
    ok("keyboard: skip link first");

    // --- create a key, then call /mcp with it
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API keys" }).click();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    await page.getByLabel("Key name").fill("e2e");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = (await page.getByTestId("new-key").textContent()).trim();
    if (!/^gk_/.test(key)) throw new Error(`no key shown: ${key}`);
    await page.getByRole("button", { name: "Copy key to clipboard" }).waitFor();
    await axe(page, "keys");
    await shot(page, SHOTS, "03-key-created");
    const call = await mcpSession(BASE, key);
    const listed = await call("tools/list", {});
    if (!listed.body.result?.tools?.some((t) => t.name === "fixture__echo")) throw new Error(`tools/list with the new key: ${JSON.stringify(listed.body).slice(0, 400)}`);
    ok("create a key and call /mcp with it");

    // --- connect a client: the key is filled in
    await page.getByRole("link", { name: "Set up a client with this key" }).click();
    await page.getByRole("heading", { name: "Connect a client" }).waitFor();
    await page.getByRole("tab", { name: "Cursor" }).click();
    const cursorSnippet = await page.getByRole("tabpanel").textContent();
    if (!cursorSnippet.includes(key) || !cursorSnippet.includes(`${BASE}/mcp`)) throw new Error("the Cursor snippet lacks the key or the hub URL");
    await page.getByRole("tab", { name: "Cursor" }).press("ArrowRight");
    await page.getByRole("tab", { name: "VS Code", selected: true }).waitFor();
    await axe(page, "connect");
    await shot(page, SHOTS, "04-connect");
    ok("connect a client with the hub URL and key filled in");

    // --- add a backend (test connection first) and see its tools
    await page.goto(BASE + "/backends");
    await page.getByRole("button", { name: "Add backend" }).click();
    const form = page.getByRole("form", { name: "Add a backend" });
    await form.getByLabel("Name", { exact: true }).fill("e2e");
    await form.getByLabel("Command").fill(FIXTURE);
    await form.getByRole("button", { name: "Test connection" }).click();
    await form.getByText(/Connected in \d+ ms: \d+ tools/).waitFor();
    await form.getByRole("button", { name: "Add backend" }).click();
    await page.getByRole("link", { name: "e2e", exact: true }).waitFor();
    await axe(page, "backends");
    await shot(page, SHOTS, "05-backend-added");
    await until("the new backend's tools", async () => {
      await page.goto(BASE + "/tools?backend=e2e");
      return page.locator("tr[data-tool='e2e__echo']").waitFor({ timeout: 3000 }).then(
        () => true,
        () => false,
      );
    });
    await page.getByRole("searchbox", { name: "Search" }).fill("echo");
    await page.waitForURL(/q=echo/);
    await axe(page, "tools");
    await shot(page, SHOTS, "06-backend-tools");
    ok("add a backend and see its tools");

    // --- who may call it: the hub's answer per user
    const echoRow = page.locator("tr[data-tool='e2e__echo']");
    await echoRow.getByRole("button", { name: "Show who may call e2e__echo" }).click();
    await echoRow.locator("summary").filter({ hasText: /\d+ of \d+ users/ }).click();
    await echoRow.getByText("may", { exact: true }).first().waitFor();
    await axe(page, "tools-access");
    await shot(page, SHOTS, "06b-who-may-call");
    ok("see who may call a tool");

    // --- disable a tool; the call is refused and shows in the live audit timeline without a reload
    const toggle = page.getByRole("switch", { name: "e2e__echo enabled" });
    await toggle.click();
    await page.getByText("e2e__echo: disabled.").waitFor();
    await until("the tool disabled on the hub", async () => !(await apiInPage(page, "GET", "/tools?backend=e2e&q=echo")).body.items.find((t) => t.name === "echo")?.enabled);
    await page.goto(BASE + "/audit?tool=e2e__echo");
    await page.getByText("live", { exact: true }).waitFor();
    const navigations = await page.evaluate(() => performance.getEntriesByType("navigation").length);
    const refused = await call("tools/call", { name: "e2e__echo", arguments: { text: "hi" } });
    if (!refused.body.error) throw new Error(`a disabled tool was called: ${JSON.stringify(refused.body)}`);
    const row = page.locator("table.audit tbody tr").filter({ hasText: "e2e__echo" }).filter({ hasText: "denied" });
    await row.first().waitFor();
    if ((await page.evaluate(() => performance.getEntriesByType("navigation").length)) !== navigations) throw new Error("the page reloaded");
    await axe(page, "audit");
    await shot(page, SHOTS, "07-audit-live");
    // Drill down: the record, its arguments redacted and bounded by the hub.
    await row.first().getByRole("button").click();
    await page.getByRole("complementary", { name: "Record details" }).getByText("decision").waitFor();
    await shot(page, SHOTS, "08-audit-detail");
    ok("disable a tool, see the call refused and appear in the live audit timeline without a reload");

    // --- policies: keyboard reorder, saved
    for (const name of ["first rule", "second rule"]) {
      const r = await apiInPage(page, "POST", "/policies", { name, effect: "allow", tools: ["nothing__*"] });
      if (r.status !== 201 && r.status !== 200) throw new Error(`creating a rule: ${JSON.stringify(r)}`);
    }
    await page.goto(BASE + "/policies");
    const firstRule = page.getByRole("listitem").filter({ hasText: "first rule" });
    await firstRule.focus();
    await page.keyboard.press("Alt+ArrowDown");
    await page.getByRole("button", { name: "Save order" }).click();
    await page.getByText("Order saved").waitFor();
    const order = (await apiInPage(page, "GET", "/policies")).body.items.map((r) => r.name);
    if (order.indexOf("second rule") > order.indexOf("first rule")) throw new Error(`keyboard reorder not saved: ${order}`);
    await axe(page, "policies");
    await shot(page, SHOTS, "09-policies");
    ok("reorder policy rules with the keyboard");

    // --- enroll an agent and see it online
    await page.goto(BASE + "/agents");
    await page.getByLabel("New agent name").fill("e2e-agent");
    await page.getByRole("button", { name: "Enroll agent" }).click();
    const install = (await page.getByLabel("install command", { exact: true }).textContent()).trim();
    if (!install.includes(`${BASE}/install.sh`)) throw new Error(`the install command lacks the hub URL: ${install.replace(/ga_\S+/, "ga_…")}`);
    const token = install.match(/--token (ga_\S+)/)?.[1];
    if (!token) throw new Error("the install command carries no token");
    agent = startAgent("e2e-agent", token);
    await page.locator("tr[data-agent='e2e-agent']").getByText("online").waitFor({ timeout: 30_000 });
    await axe(page, "agents");
    await shot(page, SHOTS, "10-agent-online");
    ok("enroll an agent and see it online");

    // --- AI: a provider (its key never shown again), a model with prices and a budget, still there after a reload
    const aiKey = "sk-e2e-not-a-real-key-0123456789";
    await page.goto(BASE + "/ai");
    await page.getByRole("heading", { name: "AI is not configured" }).waitFor();
    await axe(page, "ai not configured");
    await page.getByRole("button", { name: "Add a provider", exact: true }).click();
    const providerForm = page.getByRole("form", { name: "Add an AI provider" });
    await providerForm.getByLabel("Name", { exact: true }).fill("e2e-ai");
    await providerForm.getByLabel("Kind").selectOption("openai_compatible");
    await providerForm.getByLabel("Base URL").fill("http://127.0.0.1:9/v1");
    await providerForm.getByLabel(/^API key/).fill(aiKey);
    await providerForm.getByRole("button", { name: "Add provider" }).click();
    const providerRow = page.getByRole("table", { name: "AI providers" }).getByRole("row").filter({ hasText: "e2e-ai" });
    await providerRow.getByRole("cell", { name: "set", exact: true }).waitFor();
    await page.getByRole("button", { name: "Add model", exact: true }).click();
    const modelForm = page.getByRole("form", { name: "Add a model" });
    await modelForm.getByLabel(/^Name/).fill("e2e-model");
    await modelForm.getByRole("combobox", { name: /^Provider/ }).selectOption("e2e-ai");
    await modelForm.getByLabel(/^Aliases/).fill("e2e-alias");
    for (const [label, value] of [
      [/^Input price/, "1.5"],
      [/^Output price/, "6"],
      [/^Cache read price/, "0.15"],
      [/^Cache write price/, "1.875"],
      [/^Multiplier/, "2"],
    ]) {
      await modelForm.getByLabel(label).fill(value);
    }
    await modelForm.getByRole("button", { name: "Add model" }).click();
    await page.getByText("Saved model e2e-model.").waitFor();
    await page.getByRole("button", { name: "Add budget", exact: true }).click();
    const budgetForm = page.getByRole("form", { name: "Add a budget" });
    await budgetForm.getByLabel("Scope").selectOption("role");
    await budgetForm.getByLabel(/^Subject/).fill("developer");
    await budgetForm.getByLabel("Period").selectOption("month");
    await budgetForm.getByLabel("Limit in USD").fill("25");
    await budgetForm.getByRole("button", { name: "Add budget" }).click();
    await page.getByText("Saved budget role-developer-month.").waitFor();
    await page.reload();
    await page.getByRole("heading", { name: "AI", exact: true }).waitFor();
    const modelRow = page.getByRole("table", { name: "AI models and prices" }).getByRole("row").filter({ hasText: "e2e-model" });
    for (const text of ["$1.5", "$6", "$0.15", "$1.875", "e2e-alias"]) await modelRow.getByText(text, { exact: true }).waitFor();
    await providerRow.getByRole("cell", { name: "set", exact: true }).waitFor();
    await page.getByRole("table", { name: "AI budgets" }).getByRole("row").filter({ hasText: "role-developer-month" }).getByText("$25.00").waitFor();
    if (await page.getByRole("heading", { name: "AI is not configured" }).isVisible()) throw new Error("AI still shows as not configured");
    if ((await page.content()).includes(aiKey)) throw new Error("the provider's key is shown");
    // Editing without typing a key keeps the stored one.
    await page.getByRole("button", { name: "Edit provider e2e-ai" }).click();
    const editProvider = page.getByRole("form", { name: "Edit provider e2e-ai" });
    await editProvider.getByLabel(/^Model globs/).fill("e2e-*");
    await editProvider.getByRole("button", { name: "Save provider" }).click();
    await page.getByText("Saved provider e2e-ai.").waitFor();
    const providersNow = (await apiInPage(page, "GET", "/ai/providers")).body;
    const storedProvider = providersNow.find((p) => p.name === "e2e-ai");
    if (storedProvider?.api_key !== "***" || storedProvider.models.join() !== "e2e-*") throw new Error(`provider after edit: ${JSON.stringify(storedProvider)}`);
    const storedModel = (await apiInPage(page, "GET", "/ai/models")).body.find((m) => m.name === "e2e-model");
    const prices = storedModel && [storedModel.input_per_mtok, storedModel.output_per_mtok, storedModel.cache_read_per_mtok, storedModel.cache_write_per_mtok, storedModel.multiplier];
    if (prices?.join() !== "1.5,6,0.15,1.875,2" || storedModel.aliases.join() !== "e2e-alias") throw new Error(`model as stored: ${JSON.stringify(storedModel)}`);
    const storedBudget = (await apiInPage(page, "GET", "/ai/budgets")).body.find((b) => b.id === "role-developer-month");
    if (storedBudget?.scope !== "role" || storedBudget.subject !== "developer" || storedBudget.limit_usd !== 25) throw new Error(`budget as stored: ${JSON.stringify(storedBudget)}`);
    await axe(page, "ai configured");
    await shot(page, SHOTS, "13-ai-configured");
    ok("add an AI provider, a model with prices and a budget, and see them after a reload");

    // --- restrict a backend to a role and a user, then clear it (after confirming)
    await page.goto(BASE + "/policies");
    await page.getByRole("button", { name: "Restrict a backend", exact: true }).click();
    const visibilityForm = page.getByRole("form", { name: "Restrict a backend" });
    await visibilityForm.getByLabel("Backend").selectOption("e2e");
    await visibilityForm.getByLabel("developer", { exact: true }).check();
    await visibilityForm.getByLabel(/^Users/).fill("vera");
    await visibilityForm.getByRole("button", { name: "Save visibility" }).click();
    const visibilityRow = page.getByRole("table", { name: "Backends with restricted visibility" }).getByRole("row").filter({ hasText: "e2e" });
    await visibilityRow.getByText("roles developer · users vera · admins").waitFor();
    const restricted = (await apiInPage(page, "GET", "/visibility/e2e")).body;
    if (!restricted.restricted || restricted.roles.join() !== "developer" || restricted.users.join() !== "vera") throw new Error(`visibility as stored: ${JSON.stringify(restricted)}`);
    await axe(page, "visibility");
    await shot(page, SHOTS, "14-visibility");
    await visibilityRow.getByRole("button", { name: "Clear restriction of e2e" }).click();
    await page.getByRole("button", { name: "Yes, clear restriction of e2e" }).click();
    await page.getByText("e2e is visible to everyone again.").waitFor();
    if ((await apiInPage(page, "GET", "/visibility/e2e")).body.restricted) throw new Error("the restriction was not cleared");
    ok("restrict a backend's visibility and clear it");

    // --- edit a limit rule: from 100 requests a minute to 5000 AI tokens an hour; see the subject's usage
    const limit = await apiInPage(page, "POST", "/limits", { scope: "user", match: "vera", max_requests: 100, window: "minute" });
    if (limit.status !== 201) throw new Error(`creating a limit: ${JSON.stringify(limit)}`);
    const limitId = limit.body.id;
    await page.goto(BASE + "/limits");
    await page.getByRole("button", { name: `Edit limit ${limitId}` }).click();
    const limitForm = page.getByRole("form", { name: `Edit limit ${limitId}` });
    await limitForm.getByLabel("Counts").selectOption("tokens");
    await limitForm.getByLabel("Max tokens").fill("5000");
    await limitForm.getByLabel("Per").selectOption("hour");
    await limitForm.getByRole("button", { name: "Save limit" }).click();
    await page.getByText("Limit saved").waitFor();
    await page.getByRole("table", { name: "Rate limit rules" }).getByRole("row").filter({ hasText: "5000 tokens" }).waitFor();
    const edited = (await apiInPage(page, "GET", "/limits")).body.find((r) => r.id === limitId);
    if (edited?.unit !== "tokens" || edited.max_tokens !== 5000 || edited.window !== "hour" || edited.max_requests) throw new Error(`limit as stored: ${JSON.stringify(edited)}`);
    await page.getByRole("form", { name: "Usage of a subject" }).getByLabel("User").fill("vera");
    await page.getByRole("table", { name: "Current counts against the rules" }).getByRole("row").filter({ hasText: limitId }).getByText("0 / 5000 tokens").waitFor();
    await axe(page, "limits");
    await shot(page, SHOTS, "15-limit-edited");
    ok("edit a limit rule into a token limit and see the subject's usage");

    // --- a custom role: created with a permission, listed, deleted after confirming
    await page.goto(BASE + "/users");
    await page.getByRole("button", { name: "New role", exact: true }).click();
    const roleForm = page.getByRole("form", { name: "New role" });
    await roleForm.getByLabel("Role name").fill("auditor");
    await roleForm.getByLabel("audit:read", { exact: true }).check();
    await roleForm.getByRole("button", { name: "Create role" }).click();
    await page.getByText("Created role auditor.").waitFor();
    const roleRow = page.getByRole("table", { name: "Roles and their permissions" }).getByRole("row").filter({ hasText: "auditor" });
    await roleRow.getByText("audit:read", { exact: true }).waitFor();
    await axe(page, "roles");
    await shot(page, SHOTS, "16-roles");
    await roleRow.getByRole("button", { name: "Delete role auditor" }).click();
    await page.getByRole("button", { name: "Yes, delete role auditor" }).click();
    await page.getByText("Deleted role auditor.").waitFor();
    if ((await apiInPage(page, "GET", "/roles")).body.some((r) => r.name === "auditor")) throw new Error("the role was not deleted");
    ok("create a custom role and delete it");

    // --- every other page renders for the admin without serious accessibility problems
    for (const [path, heading] of [
      ["/users", "Users & roles"],
      ["/ai", "AI"],
      ["/limits", "Limits & settings"],
    ]) {
      await page.goto(BASE + path);
      await page.getByRole("heading", { name: heading, exact: true }).waitFor();
      await axe(page, path);
    }
    ok("users, AI and limits pages pass the accessibility check");

    // --- a narrow window: the menu collapses behind a button
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(BASE + "/audit");
    const nav = page.getByRole("navigation", { name: "Main" });
    if (await nav.getByRole("link", { name: "Tools" }).isVisible()) throw new Error("the menu is open in a narrow window");
    await page.getByRole("button", { name: "Menu" }).click();
    await nav.getByRole("link", { name: "Tools" }).waitFor();
    await axe(page, "narrow audit");
    await shot(page, SHOTS, "11-narrow");
    ok("works in a narrow window");
    await page.setViewportSize({ width: 1280, height: 900 });

    // --- a viewer cannot reach admin pages
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, BASE, VIEWER, VIEWER_PASSWORD);
    const links = await page.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents();
    for (const hidden of ["Users & roles", "API keys"]) if (links.includes(hidden)) throw new Error(`a viewer sees ${hidden}: ${links}`);
    await page.goto(BASE + "/users");
    await page.getByRole("heading", { name: "Not allowed" }).waitFor();
    await shot(page, SHOTS, "12-viewer-refused");
    await page.goto(BASE + "/tools");
    await page.locator("tr[data-tool]").first().waitFor();
    if (await page.getByRole("switch").first().isEnabled()) throw new Error("a viewer can toggle tools");
    // Read-only pages show no write controls to a viewer.
    for (const [path, table] of [
      ["/ai", "AI providers"],
      ["/limits", "Rate limit rules"],
    ]) {
      await page.goto(BASE + path);
      await page.getByRole("table", { name: table }).waitFor();
      const writes = await page.getByRole("button", { name: /^(Add|Edit|Delete|Remove|Restrict)/ }).count();
      if (writes) throw new Error(`a viewer sees ${writes} write controls on ${path}`);
    }
    const denied = await apiInPage(page, "POST", "/users", { username: "mallory", role: "admin" });
    if (denied.status !== 403) throw new Error(`a viewer created a user: ${denied.status}`);
    await axe(page, "viewer tools");
    ok("a viewer cannot reach admin pages");

    if (b.problems.length) throw new Error(`browser problems:\n${b.problems.join("\n")}`);
    ok("no CSP violations or page errors");
  } catch (e) {
    await shot(page, SHOTS, "failure").catch(() => {});
    throw e;
  } finally {
    agent?.stop();
    await b.close();
  }
  console.log(`all ${passed.length} dashboard checks passed`);
}

/** The real gateway-agent serving the fixture server, with its token in a 0600 file. */
function startAgent(name, token) {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-agent-"));
  const config = join(dir, "config.toml");
  writeFileSync(config, `[agent]\nname = "${name}"\nhub_url = "${BASE}"\n\n[[servers]]\nname = "fx"\ntransport = "stdio"\ncommand = ${JSON.stringify(FIXTURE)}\n`);
  writeFileSync(join(dir, "token"), token + "\n", { mode: 0o600 });
  chmodSync(join(dir, "token"), 0o600);
  const child = spawn(AGENT, ["run", "--no-tui", "--config", config], {
    env: { PATH: process.env.PATH, HOME: dir, XDG_CONFIG_HOME: join(dir, "xdg"), GATEHOUSE_AGENT_STATE_DIR: join(dir, "state") },
    stdio: ["ignore", "ignore", "ignore"],
    detached: true,
  });
  return {
    stop() {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

main().catch((e) => {
  console.error(`FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
