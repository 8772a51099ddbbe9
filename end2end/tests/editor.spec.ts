import type { Page } from "@playwright/test";
import { expect, hydrated, signIn, test } from "./helpers";

// The template editor's live counter runs the domain crate in wasm: these tests type in the
// hydrated page and watch the counter, and a control test shows that without the wasm the
// counter does not move (so the first tests really test hydration, not the server's HTML).
// Expected figures come from the domain crate (`smsdesk segments`), not from the browser.

const EDITOR = "/templates/new";

// The editor is a dispatcher's page: sign in first.
test.beforeEach(async ({ page }) => {
  await signIn(page, "dispatcher");
});

async function openHydrated(page: Page) {
  await page.goto(EDITOR);
  await hydrated(page);
}

function counter(page: Page) {
  return {
    encoding: page.getByTestId("counter-encoding"),
    segments: page.getByTestId("counter-segments"),
    characters: page.getByTestId("counter-characters"),
    left: page.getByTestId("counter-left"),
  };
}

test("a 1,600-character emoji body is UCS-2 in 49 segments", async ({ page }) => {
  await openHydrated(page);
  const body = page.getByLabel("Body");
  const c = counter(page);

  // 1,599 emoji, then the 1,600th typed as a keystroke.
  await body.fill("😀".repeat(1599));
  await expect(c.encoding).toHaveText("UCS-2");
  await expect(c.characters).toHaveText("1599");
  await body.press("End");
  await page.keyboard.type("😀");

  // Each 😀 is 2 UTF-16 units; a segment holds 67 units, so 33 emoji: 1,600 = 48 × 33 + 16.
  await expect(c.characters).toHaveText("1600");
  await expect(c.segments).toHaveText("49");
  await expect(c.left).toHaveText("35");
  await expect(page.getByTestId("segment-view").locator("[data-segment]")).toHaveCount(49);
});

test("an extension character at a GSM-7 segment boundary moves whole to the next segment", async ({ page }) => {
  await openHydrated(page);
  const body = page.getByLabel("Body");
  const c = counter(page);

  // 158 septets + € (two septets) = 160: exactly one full segment.
  await body.fill("a".repeat(158) + "€");
  await expect(c.encoding).toHaveText("GSM-7");
  await expect(c.segments).toHaveText("1");
  await expect(c.characters).toHaveText("160");
  await expect(c.left).toHaveText("0");

  // One more keystroke: concatenated, 153 septets a segment.
  await body.press("End");
  await page.keyboard.type("a");
  await expect(c.segments).toHaveText("2");
  await expect(c.characters).toHaveText("161");
  await expect(c.left).toHaveText("145");

  // 152 'a' + '€': the € would straddle septets 153-154, so segment 1 ends after 152 septets.
  await body.fill("a".repeat(152) + "€" + "a".repeat(10));
  await expect(c.segments).toHaveText("2");
  const segs = page.getByTestId("segment-view").locator("[data-segment]");
  await expect(segs.nth(0)).toHaveText("a".repeat(152));
  await expect(segs.nth(1)).toHaveText("€" + "a".repeat(10));
  await expect(c.left).toHaveText("141");
});

test("typing { offers the declared variables and Enter inserts one", async ({ page }) => {
  await openHydrated(page);
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.getByLabel("Variable name", { exact: true }).fill("tracking_number");
  await page.getByLabel("Sample value", { exact: true }).fill("SS123");
  const body = page.getByLabel("Body");
  await body.fill("Shipment ");
  await body.press("End");
  await page.keyboard.type("{tr");
  const option = page.getByRole("option", { name: "tracking_number" });
  await expect(option).toBeVisible();
  await page.keyboard.press("Enter");
  await expect(body).toHaveValue("Shipment {tracking_number}");
  await expect(page.getByTestId("segment-view")).toHaveText("Shipment SS123");
});

test.describe("without the wasm", () => {
  // The wasm's loader fails, by design of the test.
  test.use({ allowedErrors: [/^uncaught: Failed to fetch$/] });

  test("control: with the wasm blocked the counter does not update", async ({ page }) => {
    await page.route("**/*.wasm", (route) => route.abort());
    const wasmFailed = page.waitForEvent("requestfailed", (r) => r.url().endsWith(".wasm"));
    await page.goto(EDITOR);
    await wasmFailed;
    await page.waitForLoadState("load");
    const c = counter(page);
    const snapshot = async () => ({
      encoding: await c.encoding.textContent(),
      segments: await c.segments.textContent(),
      characters: await c.characters.textContent(),
      left: await c.left.textContent(),
    });
    const before = await snapshot();
    // The server rendered the counter for the empty body.
    expect(before.characters).toBe("0");

    await page.getByLabel("Body").fill("a".repeat(158) + "€");
    // Let any pending work (there is none without wasm) run: two animation frames.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

    await expect(page.locator("body")).not.toHaveAttribute("data-hydrated");
    expect(await snapshot()).toEqual(before);
  });
});
