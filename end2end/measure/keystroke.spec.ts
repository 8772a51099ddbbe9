import { test, type Page } from "@playwright/test";
import { signIn } from "../tests/helpers";

// Not a test: `make bench` runs it (playwright.measure.config.ts) to measure keystroke-to-counter
// time with a 1,600-character body and print it; it asserts nothing about timing.
test.beforeEach(async ({ page }) => {
  await signIn(page, "dispatcher");
});

async function measure(page: Page, filler: string, typed: string, rounds: number) {
  await page.goto("/templates/new");
  await page.locator("body[data-hydrated]").waitFor();
  const body = page.getByLabel("Body");
  await body.fill(filler.repeat(1599));
  await page.getByTestId("counter-characters").filter({ hasText: "1599" }).waitFor();
  await body.press("End");
  // In the page: time from the beforeinput event to the DOM change of the characters counter, and
  // to the next animation frame after it (when the browser can paint it).
  await page.evaluate(() => {
    const w = window as any;
    w.__samples = [];
    const target = document.querySelector('[data-testid="counter-characters"]')!;
    const area = document.querySelector("#template-body")!;
    // beforeinput: fires for real keys and for inserted text (emoji) alike, before the input event.
    area.addEventListener("beforeinput", () => { w.__down = performance.now(); }, { capture: true });
    new MutationObserver(() => {
      const dom = performance.now() - w.__down;
      requestAnimationFrame(() => w.__samples.push([dom, performance.now() - w.__down]));
    }).observe(target, { childList: true, characterData: true, subtree: true });
  });
  for (let i = 0; i < rounds; i++) {
    await page.keyboard.type(typed);
    await page.waitForFunction((n) => (window as any).__samples.length >= n, 2 * i + 1);
    await page.keyboard.press("Backspace");
    await page.waitForFunction((n) => (window as any).__samples.length >= n, 2 * i + 2);
  }
  const samples: [number, number][] = await page.evaluate(() => (window as any).__samples);
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const max = (xs: number[]) => Math.max(...xs);
  return {
    domMedian: median(samples.map((s) => s[0])),
    domMax: max(samples.map((s) => s[0])),
    frameMedian: median(samples.map((s) => s[1])),
    frameMax: max(samples.map((s) => s[1])),
    n: samples.length,
  };
}

test("keystroke to counter update, 1,600 characters", async ({ page }) => {
  for (const [name, filler, typed] of [["GSM-7 'a'", "a", "a"], ["emoji (UCS-2, 1,600 marks)", "😀", "😀"]]) {
    const r = await measure(page, filler, typed, 15);
    console.log(
      `${name}: input→counter DOM median ${r.domMedian.toFixed(1)} ms (max ${r.domMax.toFixed(1)}), ` +
        `→next frame median ${r.frameMedian.toFixed(1)} ms (max ${r.frameMax.toFixed(1)}), n=${r.n}`,
    );
  }
});
