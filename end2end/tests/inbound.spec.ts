import { createHmac, randomBytes } from "node:crypto";
import { expect, hydrated, signIn, test } from "./helpers";

// A recipient replies STOP: the test posts Twilio's incoming-message webhook signed with the
// webhook SharedKey (HMAC-SHA256) exactly as Twilio signs it; smsdesk answers Twilio's default
// reply in TwiML, and the send page then reports the number as opted out. A tampered copy is
// refused and changes nothing.
const SHARED_KEY = process.env.TWILIO_WEBHOOK_SHARED_KEY ?? "e2e-shared-key-0123456789abcdef";

function sign(url: string, params: Record<string, string>): string {
  const data = url + Object.keys(params).sort().map((k) => k + params[k]).join("");
  return createHmac("sha256", SHARED_KEY).update(data, "utf8").digest("base64");
}

test("an inbound STOP, signed as Twilio signs it, makes the send page report the number as opted out", async ({
  page,
  request,
  baseURL,
}) => {
  const url = `${baseURL}/webhooks/twilio/inbound`;
  const params = {
    MessageSid: `SM${randomBytes(16).toString("hex")}`,
    AccountSid: `AC${randomBytes(16).toString("hex")}`,
    From: "+14155552699",
    To: "+15005550006",
    Body: "  Stop ",
    NumMedia: "0",
  };
  const headers = {
    "X-Twilio-Signature": sign(url, params),
    "X-Twilio-Webhooks-Signature-Settings": "key=KS0123456789abcdef0123456789abcdef,algorithm=HMAC_SHA256",
  };
  // The same request with the body changed after signing: refused.
  const tampered = await request.post(url, { form: { ...params, Body: "START" }, headers });
  expect(tampered.status()).toBe(403);

  const answer = await request.post(url, { form: params, headers });
  expect(answer.status()).toBe(200);
  expect(answer.headers()["content-type"]).toContain("xml");
  expect(await answer.text()).toContain("You have successfully been unsubscribed");

  await signIn(page, "dispatcher", "/send");
  await page.getByLabel("Recipients").fill("+1 415 555 2699");
  await page.getByLabel("Message").fill("Your pickup is at 9");
  await page.getByRole("button", { name: "Review" }).click();
  await expect(page.getByTestId("review-problems")).toContainText("opted out");
});

test("a driver's reply lands in the inbox beside the message it answers, and is marked read", async ({
  page,
  request,
  baseURL,
}) => {
  const marker = `Dock ${Date.now()}`;
  await signIn(page, "dispatcher", "/send");
  await page.getByLabel("Recipients").fill("+1 415 555 2697");
  await page.getByLabel("Message").fill(`${marker}: next delivery SS-1042`);
  await page.getByRole("button", { name: "Review" }).click();
  await page.getByRole("button", { name: "Send 1 message" }).click();
  await expect(page.getByTestId("progress-text")).toBeVisible();

  const url = `${baseURL}/webhooks/twilio/inbound`;
  const reply = `Running 10 min late ${marker}`;
  const params = {
    MessageSid: `SM${randomBytes(16).toString("hex")}`,
    AccountSid: `AC${randomBytes(16).toString("hex")}`,
    From: "+14155552697",
    To: "+15005550006",
    Body: reply,
    NumMedia: "0",
  };
  const headers = {
    "X-Twilio-Signature": sign(url, params),
    "X-Twilio-Webhooks-Signature-Settings": "key=KS0123456789abcdef0123456789abcdef,algorithm=HMAC_SHA256",
  };
  const answer = await request.post(url, { form: params, headers });
  expect(answer.status()).toBe(200);

  await page.goto("/inbox?unread=1");
  await hydrated(page);
  const row = page.getByTestId("inbox").locator("tr", { hasText: reply });
  await expect(row).toHaveAttribute("data-state", "unread");
  await expect(row).toContainText(`${marker}: next delivery SS-1042`);
  await expect(row).toContainText("+14155552697");
  await row.getByRole("button", { name: "Mark read" }).click();
  // Read replies leave the unread view.
  await expect(page.getByTestId("inbox").locator("tr", { hasText: reply })).toHaveCount(0);
  await page.goto("/inbox");
  await hydrated(page);
  await expect(page.getByTestId("inbox").locator("tr", { hasText: reply })).toHaveAttribute("data-state", "read");
});
