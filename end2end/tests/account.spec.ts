import { PASSWORD, expect, hydrated, signIn, test } from "./helpers";

// Everyone changes their own password at /account: the current one is asked for again, the two
// new ones must match, and the new one is what signs in from then on. The test puts the old
// password back at the end, so that the other tests still sign in with it.
const NEW_PASSWORD = "a brand new password 5678";

async function change(page: import("@playwright/test").Page, current: string, next: string) {
  await page.getByLabel("Current password").fill(current);
  await page.getByLabel("New password", { exact: true }).fill(next);
  await page.getByLabel("New password again").fill(next);
  await page.getByRole("button", { name: "Change password" }).click();
}

test("a user changes their own password and signs in with the new one", async ({ page }) => {
  await signIn(page, "compliance");
  await page.getByTestId("nav").getByRole("link", { name: "Your account" }).click();
  await page.waitForURL((url) => url.pathname === "/account");
  await hydrated(page);

  // Two different new passwords: said at once, and the button stays off.
  await page.getByLabel("Current password").fill(PASSWORD);
  await page.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel("New password again").fill("something else entirely");
  await expect(page.getByRole("alert")).toContainText("differ");
  await expect(page.getByRole("button", { name: "Change password" })).toBeDisabled();

  // A wrong current password is refused.
  await change(page, "not my password at all", NEW_PASSWORD);
  await expect(page.getByTestId("password-changed")).toHaveCount(0);
  await expect(page.locator(".error")).toBeVisible();

  await change(page, PASSWORD, NEW_PASSWORD);
  await expect(page.getByTestId("password-changed")).toBeVisible();

  // Signed out, the old password no longer works and the new one does.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");
  await hydrated(page);
  await page.getByLabel("E-mail").fill("compliance@e2e.test");
  await page.getByLabel("Password").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((url) => url.pathname === "/");
  await hydrated(page);
  await expect(page.getByTestId("whoami")).toContainText("compliance@e2e.test");

  // Put the old password back for the other tests.
  await page.goto("/account");
  await hydrated(page);
  await change(page, NEW_PASSWORD, PASSWORD);
  await expect(page.getByTestId("password-changed")).toBeVisible();
});

test("the API's Swagger UI opens and reads the OpenAPI document", async ({ page }) => {
  await page.goto("/api/docs/");
  await expect(page.getByText("smsdesk JSON API")).toBeVisible();
  await expect(page.getByRole("link", { name: "/api/v1/messages/batch" })).toBeVisible();
});
