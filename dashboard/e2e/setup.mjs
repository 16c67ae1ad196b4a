// The first administrator, created through the setup link the hub prints
// (GATEHOUSE_E2E_SETUP_LINK), then signed in to the dashboard.
import { axe, env, launch, shot } from "./lib.mjs";

const LINK = env("GATEHOUSE_E2E_SETUP_LINK");
const PASSWORD = env("GATEHOUSE_E2E_ADMIN_PASSWORD");

async function main() {
  const b = await launch();
  const { page } = b;
  page.setDefaultTimeout(20_000);
  try {
    await page.goto(LINK);
    await page.getByRole("heading", { name: "Set up Gatehouse" }).waitFor();
    if (new URL(page.url()).hash) throw new Error("the token stays in the address bar");
    await axe(page, "setup");
    await page.getByLabel("Username").fill("first");
    await page.getByLabel("Password (at least 12 characters)").fill(PASSWORD);
    await page.getByLabel("Repeat the password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create administrator" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await page.locator(".who", { hasText: "first (admin)" }).waitFor();
    await shot(page, env("GATEHOUSE_E2E_SCREENSHOTS"), "00-setup-done");
    // The link works once.
    await page.goto(LINK);
    await page.getByText("Setup is already done").waitFor();
    if (b.problems.length) throw new Error(b.problems.join("\n"));
  } finally {
    await b.close();
  }
  console.log("ok the first admin is created from the setup link");
}

main().catch((e) => {
  console.error(`FAILED: ${e.stack ?? e}`);
  process.exit(1);
});
