// authsvc's token UI in headless Chromium, as a person uses it, for meshmux's end-to-end tests.
// Usage: node token-ui.mjs '<spec JSON>' where the spec is
//   {"base_url": "http://127.0.0.1:<gateway port>", "user": "bob", "state_file": "...",
//    "screenshots": "<dir>", "action": "mint" | "revoke",
//    "mint": {"name": "ci", "roles": ["staging-reader"], "lacking_role": "admin",
//             "too_many_days": 31}}
// mint: signs in through /ui/login (whichever IdP authsvc uses), tries a token with a role the
//   user lacks and one with an over-long lifetime (both should be refused by the server: the
//   form is altered past the browser's own checks, as a crafted POST would be), then mints the
//   real one. Saves the browser's cookies to state_file. Prints
//   {"refusals": [{"what", "status", "message"}], "token", "listed": [row texts]}.
// revoke: restores the cookies, revokes the token named mint.name on /ui/tokens and prints
//   {"notice", "state"} (the row's state afterwards).
import { writeFileSync } from "node:fs";
import { launch, shooter, signIn } from "./browser.mjs";

const spec = JSON.parse(process.argv[2] ?? "{}");
if (!spec.base_url || !spec.action || !spec.state_file) {
  console.error("usage: node token-ui.mjs '{\"base_url\": ..., \"action\": \"mint\"|\"revoke\", ...}'");
  process.exit(2);
}
const base = spec.base_url.replace(/\/$/, "");
const shot = shooter(spec.screenshots);
const onTokens = (url) => url.startsWith(`${base}/ui/tokens`);

async function submitMint(page, { name, roles, days, extraRole }) {
  await page.fill("#name", name);
  // Past the browser's own checks: what a crafted POST would send.
  await page.evaluate(
    ({ days, extraRole }) => {
      const days_ = document.querySelector("#days");
      days_.removeAttribute("max");
      days_.value = String(days);
      if (extraRole) {
        const box = document.createElement("input");
        Object.assign(box, { type: "checkbox", name: "role", value: extraRole, checked: true });
        document.querySelector(".roles").appendChild(box);
      }
    },
    { days, extraRole: extraRole ?? null },
  );
  for (const role of roles) {
    await page.check(`input[name="role"][value="${role}"]`);
  }
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/ui/tokens` && r.request().method() === "POST"),
    page.click('form[action="/ui/tokens"] button'),
  ]);
  await page.waitForLoadState("domcontentloaded");
  return response.status();
}

const { context, close } = await launch(
  spec.action === "revoke" ? { storageState: spec.state_file } : {},
);
let out;
try {
  const page = await context.newPage();
  const mint = spec.mint ?? {};
  if (spec.action === "mint") {
    await page.goto(`${base}/ui/login`);
    await signIn(page, { user: spec.user, done: onTokens, shot });
    await shot(page, "tokens-signed-in");
    const refusals = [];
    const refused = async (what, attempt) => {
      const status = await submitMint(page, attempt);
      const message = (await page.locator(".error").first().innerText().catch(() => "")).trim();
      await shot(page, `refused-${what.replace(/\W+/g, "-")}`);
      refusals.push({ what, status, message });
    };
    await refused("lacking role", { name: `${mint.name}-bad-role`, roles: [], days: 1, extraRole: mint.lacking_role });
    await refused("too long", { name: `${mint.name}-too-long`, roles: mint.roles, days: mint.too_many_days });
    const status = await submitMint(page, { name: mint.name, roles: mint.roles, days: 1 });
    await shot(page, "minted");
    if (status !== 200) throw new Error(`minting answered ${status}: ${await page.locator("body").innerText()}`);
    const token = (await page.locator("code.token").innerText()).trim();
    const listed = await page.locator("table tr").allInnerTexts();
    await context.storageState({ path: spec.state_file });
    out = { refusals, token, listed };
  } else {
    await page.goto(`${base}/ui/tokens`);
    if (!onTokens(page.url())) throw new Error(`not signed in any more: at ${page.url()}`);
    const row = page.locator("table tr", { has: page.locator("td strong", { hasText: new RegExp(`^${mint.name}$`) }) });
    await shot(page, "before-revoke");
    await Promise.all([page.waitForNavigation({ waitUntil: "domcontentloaded" }), row.locator("button").click()]);
    await shot(page, "revoked");
    const notice = (await page.locator(".success").first().innerText()).trim();
    const state = (await row.locator("td").nth(5).innerText()).trim();
    out = { notice, state };
  }
} finally {
  await close();
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
