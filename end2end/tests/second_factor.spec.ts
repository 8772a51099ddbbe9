import type { Browser, Page } from "@playwright/test";
import { PASSWORD, expect, hydrated, signIn, test } from "./helpers";

// A dispatcher adds a mobile number on their account page, confirmed by the code the simulated
// phone received (read on the admin's "Simulated phones" page, as a developer would), and keeps
// the recovery codes. Sign-in then asks for the texted code: a wrong one is refused, the right
// one signs in; a recovery code signs in once, and not twice. scripts/e2e.sh makes this user.
const EMAIL = "second@e2e.test";
const PHONE = "+14155552691";

/** The texts the simulated phone received, newest first, read by an admin in their own browser. */
async function texts(admin: Page): Promise<string[]> {
  await admin.goto(`/simulator?to=${encodeURIComponent(PHONE)}`);
  await hydrated(admin);
  return admin.getByTestId("simulator-body").allTextContents();
}

/** The code in the newest text, once the phone has received `count` texts (smsdesk's worker sends them). */
async function code(admin: Page, count: number): Promise<string> {
  await expect.poll(async () => (await texts(admin)).length, { timeout: 20_000 }).toBeGreaterThanOrEqual(count);
  const newest = (await texts(admin))[0];
  const found = newest.match(/\b(\d{6})\b/);
  expect(found, newest).not.toBeNull();
  return found![1];
}

async function password(page: Page) {
  await page.goto("/login");
  await hydrated(page);
  await page.getByLabel("E-mail").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function adminPage(browser: Browser): Promise<Page> {
  const admin = await (await browser.newContext()).newPage();
  await signIn(admin, "admin");
  return admin;
}

test("a user with a second factor signs in with the texted code or a recovery code", async ({ page, browser }) => {
  const admin = await adminPage(browser);

  // Password alone at first; then add the phone.
  await password(page);
  await page.waitForURL((url) => url.pathname === "/");
  await page.goto("/account");
  await hydrated(page);
  await expect(page.getByTestId("second-factor-off")).toBeVisible();
  await page.getByRole("button", { name: "Add a mobile number" }).click();
  await page.getByLabel("Mobile number").fill("+1 415 555 2691");
  await page.getByLabel("Your password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Send a code" }).click();
  await expect(page.getByTestId("enrol").getByRole("status")).toContainText("+1 415 *** **91");
  await page.getByLabel("Code from the text").fill(await code(admin, 1));
  await page.getByRole("button", { name: "Confirm" }).click();
  const shown = page.getByTestId("recovery-codes").locator("code");
  await expect(shown).toHaveCount(10);
  const recovery = await shown.allTextContents();
  await page.getByRole("button", { name: "I have kept them" }).click();
  await expect(page.getByTestId("second-factor-on")).toContainText("10 recovery codes left");

  // Sign-in asks for the code; a wrong one is refused, the texted one signs in.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");
  await password(page);
  await expect(page.getByTestId("code-step")).toContainText("+1 415 *** **91");
  await expect(page.getByRole("button", { name: "Send again" })).toBeDisabled();
  const texted = await code(admin, 2);
  await page.getByLabel("Code", { exact: true }).fill(texted === "000000" ? "111111" : "000000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("code-step").getByRole("alert")).toContainText("not right");
  await page.getByLabel("Code", { exact: true }).fill(texted);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === "/");
  await hydrated(page);
  await expect(page.getByTestId("whoami")).toContainText(EMAIL);

  // A recovery code works once.
  for (const attempt of ["first", "second"]) {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL((url) => url.pathname === "/login");
    await password(page);
    await expect(page.getByTestId("code-step")).toBeVisible();
    await page.getByLabel("Code", { exact: true }).fill(recovery[0]);
    await page.getByRole("button", { name: "Sign in" }).click();
    if (attempt === "first") {
      await page.waitForURL((url) => url.pathname === "/");
      await hydrated(page);
      await expect(page.getByTestId("whoami")).toContainText(EMAIL);
    } else {
      await expect(page.getByTestId("code-step").getByRole("alert")).toContainText(
        "not one of yours, or it was used already",
      );
    }
  }
  // Another recovery code still works.
  await page.getByLabel("Code", { exact: true }).fill(recovery[1]);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === "/");
  await hydrated(page);

  // The admin's Verify page lists the verifications (masked) and the console's service.
  await admin.goto("/verify");
  await hydrated(admin);
  await expect(admin.getByTestId("verifications")).toContainText("+1 415 *** **91");
  await expect(admin.getByTestId("verifications")).toContainText("approved");
  await expect(admin.getByRole("form", { name: "Guards of smsdesk console", exact: true })).toBeVisible();
  await expect(admin.getByTestId("verify-days")).toContainText(new Date().toISOString().slice(0, 10));
});
