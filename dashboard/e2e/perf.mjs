// Page timings of the dashboard against a hub (seeded with audit events by
// the hub's `dashboard` integration test, or any hub): for each page, the
// time from navigation start until its content is on screen and the main
// thread is idle (time to interactive), plus the gzipped size of the initial
// JavaScript. Prints a table; fails when a page takes over
// GATEHOUSE_PERF_MAX_MS (default 1000) or the initial JS is over 300 KB gzipped.
//
//   GATEHOUSE_E2E_URL, GATEHOUSE_E2E_ADMIN, GATEHOUSE_E2E_ADMIN_PASSWORD, GATEHOUSE_E2E_SCREENSHOTS
import { gzipSync } from "node:zlib";
import { env, launch, shot, signIn } from "./lib.mjs";

const BASE = env("GATEHOUSE_E2E_URL");
const MAX_MS = Number(process.env.GATEHOUSE_PERF_MAX_MS || 1000);
const MAX_INITIAL_JS = 300 * 1024;
const RUNS = Number(process.env.GATEHOUSE_PERF_RUNS || 3);

// What shows that each page has its data (not just its spinner).
const PAGES = [
  ["/", "Overview", "figure.chart"],
  ["/backends", "Backends", "table tbody tr"],
  ["/agents", "Agents", "form[aria-label='Enroll an agent']"],
  ["/tools", "Tools", "table tbody tr"],
  ["/policies", "Policies", "#sim-title"],
  ["/audit", "Audit", "table.audit tbody tr"],
  ["/users", "Users & roles", "table tbody tr"],
  ["/keys", "API keys", "form[aria-label='Create an API key']"],
  ["/ai", "AI", "h2"],
  ["/limits", "Limits & settings", "form[aria-label='Change your password']"],
  ["/connect", "Connect a client", "[role=tabpanel]"],
];

/** Gzipped bytes of the JS the first page load needs (the entry and what it imports statically). */
async function initialJs() {
  const html = await (await fetch(BASE + "/")).text();
  const urls = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  let total = 0;
  const files = [];
  for (const u of urls) {
    const bytes = Buffer.from(await (await fetch(BASE + u)).arrayBuffer());
    const gz = gzipSync(bytes, { level: 9 }).length;
    total += gz;
    files.push(`${u} ${bytes.length} B (${gz} B gzipped)`);
  }
  return { total, files };
}

async function main() {
  const js = await initialJs();
  const b = await launch();
  const { page } = b;
  page.setDefaultTimeout(30_000);
  const rows = [];
  try {
    await signIn(page, BASE, env("GATEHOUSE_E2E_ADMIN"), env("GATEHOUSE_E2E_ADMIN_PASSWORD"));
    for (const [path, title, ready] of PAGES) {
      const times = [];
      for (let i = 0; i < RUNS; i++) {
        // A full load each time: HTML, scripts (cached after the first), the page's chunk and its API calls.
        await page.goto(BASE + path, { waitUntil: "commit" });
        await page.getByRole("heading", { name: title, exact: true, level: 1 }).waitFor();
        await page.locator(ready).first().waitFor();
        // Interactive: the main thread has run every task queued so far.
        const ms = await page.evaluate(
          () =>
            new Promise((resolve) =>
              requestAnimationFrame(() => setTimeout(() => resolve(performance.now() - performance.getEntriesByType("navigation")[0].startTime), 0)),
            ),
        );
        times.push(ms);
      }
      times.sort((a, b) => a - b);
      rows.push({ path, first: times[0] === undefined ? 0 : times[times.length - 1], median: times[Math.floor(times.length / 2)] });
    }
    await page.goto(BASE + "/audit");
    await page.locator("table.audit tbody tr").first().waitFor();
    await shot(page, env("GATEHOUSE_E2E_SCREENSHOTS"), "audit-10k");
  } finally {
    await b.close();
  }
  console.log(`initial JS: ${(js.total / 1024).toFixed(1)} KB gzipped (${js.files.join(", ")})`);
  console.log(`| page | median ms | slowest ms (of ${RUNS}) |`);
  console.log("|---|---:|---:|");
  for (const r of rows) console.log(`| ${r.path} | ${Math.round(r.median)} | ${Math.round(r.first)} |`);
  const slow = rows.filter((r) => r.median > MAX_MS);
  if (slow.length) throw new Error(`pages over ${MAX_MS} ms: ${slow.map((r) => r.path).join(", ")}`);
  if (js.total > MAX_INITIAL_JS) throw new Error(`initial JS is ${js.total} B gzipped, over ${MAX_INITIAL_JS}`);
}

main().catch((e) => {
  console.error(`FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
