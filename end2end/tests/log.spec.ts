import { readFileSync } from "node:fs";
import { expect, hydrated, signIn, test } from "./helpers";

// The delivery log: a dispatcher finds a failed message through a filter kept in the address,
// reads what its error means and sends it again; finance reads the same log with numbers masked
// and no actions. Serial: the second test reads what the first sent.
test.describe.configure({ mode: "serial" });

const marker = `Gate ${Date.now()}`;

test("a dispatcher finds a failed message in the log, reads why, and sends it again", async ({ page }) => {
  await signIn(page, "dispatcher", "/send");
  // The simulator's magic number +15005550002 fails with 21612 (not reachable from this sender).
  await page.getByLabel("Recipients").fill("+1 500 555 0002\n+1 415 555 2674");
  await page.getByLabel("Message").fill(`${marker} opens at 7am`);
  await page.getByRole("button", { name: "Review" }).click();
  await page.getByRole("button", { name: "Send 2 messages" }).click();
  await expect(page.getByTestId("progress-text")).toContainText("0 waiting in smsdesk", { timeout: 15_000 });

  // The overview names the failure and links to the log filtered to its error code.
  await page.goto("/");
  await hydrated(page);
  // (Today's counts are not asserted: a run that crosses midnight UTC would start a new day.)
  await expect(page.getByTestId("overview-today")).toContainText("UTC");
  await page.getByTestId("overview-failures").getByRole("link", { name: "error 21612" }).first().click();
  await page.waitForURL((url) => url.pathname === "/messages" && url.search.includes("error_code=21612"));
  await expect(page.getByTestId("log")).toContainText("+15005550002");

  // The filter is in the address: a bookmark or a shared link opens the same view.
  await page.goto(`/messages?status=problems&text=${encodeURIComponent(marker)}`);
  await hydrated(page);
  const log = page.getByTestId("log");
  await expect(log.locator("tbody tr")).toHaveCount(1);
  await expect(log).toContainText("+15005550002");
  await expect(log).toContainText("21612");
  await expect(page.getByLabel("Status", { exact: true })).toHaveValue("problems");
  await expect(page.getByLabel("Text contains")).toHaveValue(marker);

  // The filter form changes the address.
  await page.getByLabel("Status", { exact: true }).selectOption("");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL((url) => !url.search.includes("status=problems"));
  await expect(page.getByTestId("log").locator("tbody tr")).toHaveCount(2);
  await expect(page.getByTestId("log-counts")).toContainText("failed 1");

  // The view exports as CSV: streamed by the server, its progress shown in the page.
  const downloading = page.waitForEvent("download");
  await page.getByTestId("export").click();
  const download = await downloading;
  const csv = readFileSync(await download.path(), "utf8");
  expect(csv.trim().split("\r\n")).toHaveLength(3);
  expect(csv).toContain(`${marker} opens at 7am`);
  await expect(page.getByTestId("export-progress")).toHaveText("Exported 2 rows.");

  await page.getByTestId("log").locator("tr", { hasText: "+15005550002" }).getByRole("link").click();
  await page.waitForURL((url) => url.pathname.startsWith("/messages/SM"));
  await expect(page.getByTestId("message-status")).toHaveText("failed");
  await expect(page.getByTestId("message-errors")).toContainText("Error 21612");
  await expect(page.getByTestId("message-body")).toHaveText(`${marker} opens at 7am`);
  await page.getByRole("button", { name: "Send again" }).click();
  await expect(page.getByTestId("timeline")).toContainText("asked to send it again");
});

test("finance reads the log with numbers masked and cannot act", async ({ page }) => {
  await signIn(page, "finance", "/messages");
  await page.goto(`/messages?status=problems&text=${encodeURIComponent(marker)}`);
  await hydrated(page);
  const log = page.getByTestId("log");
  await expect(log.locator("tbody tr")).toHaveCount(1);
  await expect(log).not.toContainText("+15005550002");
  await log.locator("tbody tr a").first().click();
  await page.waitForURL((url) => url.pathname.startsWith("/messages/SM"));
  await expect(page.getByTestId("timeline")).toBeVisible();
  await expect(page.getByRole("button", { name: "Send again" })).toHaveCount(0);
});

test("the open log announces newer messages instead of pushing them in", async ({ page }) => {
  const fresh = `Bay ${Date.now()}`;
  await signIn(page, "dispatcher", "/messages");
  await page.goto(`/messages?text=${encodeURIComponent(fresh)}`);
  await hydrated(page);
  await expect(page.getByTestId("log-empty")).toBeVisible();

  // Someone sends meanwhile, from another tab.
  const other = await page.context().newPage();
  await other.goto("/send");
  await hydrated(other);
  await other.getByLabel("Recipients").fill("+1 415 555 2675");
  await other.getByLabel("Message").fill(`${fresh} is free`);
  await other.getByRole("button", { name: "Review" }).click();
  await other.getByRole("button", { name: "Send 1 message" }).click();
  await expect(other.getByTestId("progress-text")).toBeVisible();
  await other.close();

  // The page says so within a few seconds, and shows it when asked.
  await expect(page.getByTestId("log-newer")).toContainText("1 newer message matches", { timeout: 15_000 });
  await expect(page.getByTestId("log-empty")).toBeVisible();
  await page.getByTestId("log-newer").getByRole("button", { name: "Show" }).click();
  await expect(page.getByTestId("log").locator("tbody tr")).toHaveCount(1);
  await expect(page.getByTestId("log-newer")).toHaveCount(0);
});
