import { ROLES, type Role, expect, hydrated, signIn, test } from "./helpers";

// Each role sees only its own part of the console, and a direct address it may not open
// answers 403 with a page saying so.
const NAV: Record<Role, string[]> = {
  admin: [
    "Overview",
    "Send",
    "Delivery log",
    "Inbox",
    "Templates",
    "Users",
    "Consent",
    "Spend",
    "Audit log",
    "Settings",
    "API keys",
    "Verify",
    "Your account",
  ],
  dispatcher: ["Overview", "Send", "Delivery log", "Inbox", "Templates", "Your account"],
  compliance: ["Overview", "Delivery log", "Consent", "Audit log", "Your account"],
  finance: ["Overview", "Delivery log", "Spend", "Your account"],
};
const PAGES = ["/send", "/templates", "/users", "/audit", "/settings", "/spend", "/verify"];

for (const role of ROLES) {
  test(`${role} sees only what the role allows`, async ({ page }) => {
    await signIn(page, role);
    await expect(page.getByTestId("nav").getByRole("link")).toHaveText(NAV[role]);
    for (const path of PAGES) {
      const allowed = NAV[role].some((label) => `/${label.toLowerCase().split(" ")[0]}` === path);
      const response = await page.goto(path);
      await hydrated(page);
      if (allowed) {
        expect(response?.status(), path).toBe(200);
        await expect(page.getByRole("heading", { name: "Not allowed" })).toHaveCount(0);
      } else {
        expect(response?.status(), path).toBe(403);
        await expect(page.getByRole("heading", { name: "Not allowed" })).toBeVisible();
      }
    }
  });
}

test("signing out ends the session", async ({ page }) => {
  await signIn(page, "dispatcher");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");
  const response = await page.goto("/templates");
  expect(page.url()).toContain("/login?next=/templates");
  expect(response?.status()).toBe(200);
});

test("a wrong password is refused with a reason", async ({ page }) => {
  await page.goto("/login");
  await hydrated(page);
  await page.getByLabel("E-mail").fill("finance@e2e.test");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  // The same words for a locked account or an unknown e-mail (they must not tell which).
  await expect(page.getByRole("alert")).toContainText("wrong e-mail or password");
});

test.describe("in Sydney", () => {
  test.use({ timezoneId: "Australia/Sydney", locale: "en-AU" });

  test("times are shown in the viewer's time zone, UTC kept in the tooltip", async ({ page }) => {
    await signIn(page, "compliance", "/audit");
    const first = page.getByTestId("audit-list").locator("time").first();
    const utc = await first.getAttribute("title");
    const iso = await first.getAttribute("datetime");
    expect(utc).toMatch(/ UTC$/);
    const local = await page.evaluate(
      (iso) => new Date(iso!).toLocaleString("default", { dateStyle: "medium", timeStyle: "short" }),
      iso,
    );
    await expect(first).toHaveText(local);
    expect(local).not.toContain("UTC");
  });
});
