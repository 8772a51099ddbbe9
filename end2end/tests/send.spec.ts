import { expect, signIn, test } from "./helpers";

// A dispatcher sends to a pasted list through the simulator (no Twilio credentials in the
// end-to-end server): the review says who will not get it and why, the progress follows the
// message to its final status, posted back by the simulator's signed callbacks.
test("a dispatcher reviews a list, sends, and follows the progress", async ({ page }) => {
  // An admin makes the simulator deliver everything, so the outcome below is known.
  await signIn(page, "admin", "/settings");
  await page.getByLabel("Delivered (percent)").fill("100");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("settings-saved")).toBeVisible();
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");

  await signIn(page, "dispatcher", "/send");
  await expect(page.getByTestId("mode-banner")).toContainText("Simulator");

  await page.getByLabel("Recipients").fill("+1 415 555 2671\n+1 415 555\n+44 7400 123456");
  await page.getByLabel("Message").fill("Depot 3 closes at 6pm today");
  await expect(page.getByTestId("send-counter")).toHaveText("GSM-7 · 1 segment · 27 characters");
  await page.getByRole("button", { name: "Review" }).click();

  const review = page.getByTestId("review");
  await expect(review.getByTestId("review-valid")).toHaveText("1");
  await expect(review.getByTestId("review-invalid")).toHaveText("1");
  await expect(review.getByTestId("review-geo")).toHaveText("1");
  await expect(review.getByTestId("review-problems")).toContainText("not a valid phone number");
  await expect(review.getByTestId("review-problems")).toContainText("geo permissions");

  // Editing after the review hides it: what is sent is always what was reviewed.
  await page.getByLabel("Message").fill("Depot 3 closes at 5pm today");
  await expect(review).toHaveCount(0);
  await page.getByRole("button", { name: "Review" }).click();
  await page.getByRole("button", { name: "Send 1 message" }).click();

  const progress = page.getByTestId("progress-text");
  await expect(progress).toContainText("0 waiting in smsdesk · 0 with Twilio", { timeout: 15_000 });
  await expect(progress).toHaveText(/1 delivered · 0 failed$/);
});

test("a CSV file adds its numbers to the list", async ({ page }) => {
  await signIn(page, "dispatcher", "/send");
  await page.getByLabel("Recipients").fill("+1 415 555 2671");
  await page.getByLabel(/CSV file/).setInputFiles({
    name: "drivers.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("name,phone\nAda,+1 415 555 2672\nBo,+1 415 555 2673\n"),
  });
  await expect(page.getByLabel("Recipients")).toHaveValue(/2671\nname,phone\nAda,\+1 415 555 2672/);
  await page.getByLabel("Message").fill("Report to depot 3");
  await page.getByRole("button", { name: "Review" }).click();
  // The header row in the middle is not a number: reported, not sent to.
  await expect(page.getByTestId("review-valid")).toHaveText("3");
  await expect(page.getByTestId("review-invalid")).toHaveText("1");
});

test("an admin creates an API key and sees its secret once", async ({ page }) => {
  await signIn(page, "admin", "/api-keys");
  await page.getByLabel("Which service uses it").fill("tracking service");
  await page.getByRole("button", { name: "Create key" }).click();
  await expect(page.getByTestId("new-key-secret")).not.toBeEmpty();
  await expect(page.getByTestId("key-list")).toContainText("tracking service");
  await page.reload();
  await expect(page.getByTestId("new-key")).toHaveCount(0);
  await expect(page.getByTestId("key-list")).toContainText("tracking service");
});
