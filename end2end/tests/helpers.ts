import { expect, type Page } from "@playwright/test";

// scripts/e2e.sh creates one user per role, <role>@e2e.test, with this password.
export const PASSWORD = process.env.SMSDESK_E2E_PASSWORD ?? "e2e password 1234";
export const ROLES = ["admin", "dispatcher", "compliance", "finance"] as const;
export type Role = (typeof ROLES)[number];

/** Waits until the page is hydrated (the app sets this attribute from an effect, browser only). */
export async function hydrated(page: Page) {
  await page.locator("body[data-hydrated]").waitFor();
}

/** Signs in through the sign-in page, as a person would, and waits for the page that follows. */
export async function signIn(page: Page, role: Role, next = "/") {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await hydrated(page);
  await page.getByLabel("E-mail").fill(`${role}@e2e.test`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === next);
  await hydrated(page);
  await expect(page.getByTestId("whoami")).toContainText(`${role}@e2e.test`);
}
