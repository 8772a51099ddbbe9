import { test as base, expect, type Page } from "@playwright/test";

export { expect };

/**
 * Playwright's `test`, failing any test during which the page threw or Leptos reported a
 * hydration error: such a page still looks right but part of it no longer reacts. A test that
 * breaks the page on purpose lists what it expects in `allowedErrors`.
 */
export const test = base.extend<{ allowedErrors: RegExp[]; browserErrors: void }>({
  allowedErrors: [[], { option: true }],
  browserErrors: [
    async ({ page, allowedErrors }, use) => {
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
      page.on("console", (m) => {
        if (m.type() === "error" && /hydrat|panicked/i.test(m.text())) errors.push(m.text());
      });
      await use();
      const unexpected = errors.filter((e) => !allowedErrors.some((allowed) => allowed.test(e)));
      expect(unexpected, "errors in the browser").toEqual([]);
    },
    { auto: true },
  ],
});

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
