import { expect, signIn, test } from "./helpers";

// Finance sets a monthly budget for drivers' messages (no hard stop, so other tests' sends are
// not refused); a dispatcher's send takes it past 80 %: the send page's review shows the cost and
// the budget first, finance then sees the banner, and the spend page shows the chart and its
// table. The budget is removed at the end, and its banner with it.
test("finance sets a budget, a send passes 80 %, the banner appears", async ({ page }) => {
  await signIn(page, "finance", "/spend");
  await expect(page.getByTestId("spend-chart").locator("svg")).toBeVisible();
  const form = page.getByRole("form", { name: "Set a budget" });
  await form.getByLabel("Period", { exact: true }).selectOption("month");
  await form.getByLabel("Messages", { exact: true }).selectOption("driver");
  await form.getByLabel("Amount (US$)").fill("0.02");
  await form.getByRole("button", { name: "Save budget" }).click();
  await expect(page.getByTestId("budget-saved")).toBeVisible();
  await expect(page.getByTestId("budgets")).toContainText("monthly driver budget");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");

  await signIn(page, "dispatcher", "/send");
  await page.getByLabel("Recipients").fill("+1 415 555 2661\n+1 415 555 2662");
  await page.getByLabel("Message").fill("Load 7 is ready at dock 2");
  await page.getByLabel("Category (sets the priority)").selectOption("driver");
  await page.getByRole("button", { name: "Review" }).click();
  // Two US segments at the starting price of $0.0083.
  await expect(page.getByTestId("review-cost")).toHaveText("$0.0166");
  await expect(page.getByTestId("review-budgets")).toContainText("monthly driver budget");
  await page.getByRole("button", { name: "Send 2 messages" }).click();
  await expect(page.getByTestId("progress")).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");

  await signIn(page, "finance", "/spend");
  await expect(page.getByTestId("budget-banner")).toContainText(
    /The monthly driver budget has reached (80|100) %/,
  );
  await expect(page.getByTestId("spend-chart").locator("svg rect").first()).toBeAttached();
  const today = new Date().toISOString().slice(0, 10);
  await expect(page.getByTestId("spend-days")).toContainText(today);

  await page.getByRole("button", { name: "Remove the monthly driver budget" }).click();
  await expect(page.getByTestId("budgets-empty")).toBeVisible();
  await page.reload();
  await expect(page.locator("body[data-hydrated]")).toBeAttached();
  await expect(page.getByTestId("budget-banner")).toHaveCount(0);
});
