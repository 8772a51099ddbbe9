import { expect, hydrated, signIn, test } from "./helpers";

// A compliance officer looks a number up, records an opt-out by hand with a note (a customer
// called), reads it in the history with the number masked; intake then refuses the number.
test("a compliance officer records an opt-out by hand and intake honours it", async ({ page }) => {
  await signIn(page, "compliance", "/consent");
  await page.goto(`/consent?number=${encodeURIComponent("+1 415 555 2688")}`);
  await hydrated(page);
  await expect(page.getByTestId("consent-state")).toContainText("no opt-out or opt-in on record");

  await expect(page.getByLabel("Number to change")).toHaveValue("+1 415 555 2688");
  await page.getByLabel("Change", { exact: true }).selectOption("opt_out");
  await page.getByLabel("Note").fill("Driver asked by phone, ticket 77");
  await page.getByRole("button", { name: "Record" }).click();
  await expect(page.getByTestId("consent-recorded")).toBeVisible();
  await expect(page.getByTestId("consent-state")).toContainText("has opted out");
  const history = page.getByTestId("consent-history");
  await expect(history).toContainText("Driver asked by phone, ticket 77");
  await expect(history).toContainText("console:compliance@e2e.test");
  await expect(history).not.toContainText("5552688");
  await expect(page.getByTestId("consent-recent")).toContainText("opt-out");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");
  await signIn(page, "dispatcher", "/send");
  await page.getByLabel("Recipients").fill("+1 415 555 2688");
  await page.getByLabel("Message").fill("Your pickup is at 9");
  await page.getByRole("button", { name: "Review" }).click();
  await expect(page.getByTestId("review-problems")).toContainText("opted out");
});
