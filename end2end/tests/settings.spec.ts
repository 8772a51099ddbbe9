import { expect, signIn, test } from "./helpers";

// An admin says when the fallback provider carries messages: a typo is named at once and
// nothing is saved until it is fixed; what is saved is what the page shows after a reload.
test("an admin sets the failover codes and routes, a typo named before saving", async ({ page }) => {
  await signIn(page, "admin", "/settings");
  const codes = page.getByLabel(/refuses with one of these error codes/);
  const routes = page.getByLabel(/one route per line/);
  await expect(codes).toHaveValue("20003, 20005, 21611");

  await codes.fill("20003, 2OOO5");
  await codes.blur();
  await expect(page.getByTestId("failover-codes-error")).toContainText('"2OOO5" is not an error code');
  await routes.fill("AU\nAustralia");
  await routes.blur();
  await expect(page.getByTestId("failover-routes-error")).toContainText("line 2:");
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("settings-saved")).toHaveCount(0);

  await codes.fill("20003, 20005, 21611, 30007");
  await codes.blur();
  await routes.fill("au\nemergency\nNZ two_factor");
  await routes.blur();
  await expect(page.getByTestId("failover-codes-error")).toHaveCount(0);
  await expect(page.getByTestId("failover-routes-error")).toHaveCount(0);
  // The server checks what the browser cannot: a code must be a Twilio error code.
  await codes.fill("20003, 7");
  await codes.blur();
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "7 is not a Twilio error code" })).toBeVisible();
  await codes.fill("20003, 20005, 21611, 30007");
  await codes.blur();
  await page.getByRole("button", { name: "Save settings" }).click();
  await expect(page.getByTestId("settings-saved")).toBeVisible();

  await page.reload();
  await expect(codes).toHaveValue("20003, 20005, 21611, 30007");
  await expect(routes).toHaveValue("AU\nemergency\nNZ two_factor");
});
