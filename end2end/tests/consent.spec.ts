import { readFileSync } from "node:fs";
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

test("a compliance officer imports earlier records, filters the changes, reads the chart and exports", async ({ page }) => {
  await signIn(page, "compliance", "/consent");
  await page.goto("/consent");
  await hydrated(page);
  await page
    .getByLabel("Records (CSV)")
    .fill("number,action,at,evidence\n+1 415 555 2681,opt_out,2025-06-30,Signed paper form 12\n");
  await page.getByRole("button", { name: "Import" }).click();
  await expect(page.getByTestId("consent-imported")).toContainText("Imported 1 record.");
  // The same file again adds nothing, and says why.
  await page.getByRole("button", { name: "Import" }).click();
  await expect(page.getByTestId("consent-imported")).toContainText("Imported 0 records.");
  await expect(page.getByTestId("consent-imported")).toContainText("line 2:");

  // Only imported changes: the filter is in the address.
  await page.getByLabel("From", { exact: true }).selectOption("import");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL((url) => url.search.includes("source=import"));
  await expect(page.getByTestId("consent-recent")).toContainText("Signed paper form 12");
  await expect(page.getByTestId("consent-recent")).not.toContainText("Driver asked by phone");

  // The chart is drawn by the server; the figures are in the page too.
  const chart = page.getByRole("img", { name: /Opt-outs \(bars\)/ });
  await expect(chart).toBeVisible();
  expect(await chart.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBeGreaterThan(0);

  // One number's history as CSV, the number whole for the officer who typed it.
  await page.goto(`/consent?number=${encodeURIComponent("+1 415 555 2681")}`);
  await hydrated(page);
  const downloading = page.waitForEvent("download");
  await page.getByTestId("consent-export-number").click();
  const csv = readFileSync(await (await downloading).path(), "utf8");
  expect(csv).toContain("'+14155552681,opt_out,import:compliance@e2e.test,Signed paper form 12");
});
