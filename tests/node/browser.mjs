// Headless Chromium (Debian's, driven by npm playwright-core) for meshmux's browser tests, and
// the sign-in steps a person takes at either identity provider and at authsvc's consent page.
import { join } from "node:path";
import { chromium } from "playwright-core";

const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/// A fresh profile every run (playwright-core gives `launch` a new temporary --user-data-dir and
/// removes it on close); `storageState` restores cookies saved by an earlier run.
export async function launch({ storageState } = {}) {
  const executablePath = process.env.MESHMUX_TEST_CHROMIUM || "/usr/bin/chromium";
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: FLAGS,
    timeout: 30_000,
  });
  const context = await browser.newContext(storageState ? { storageState } : {});
  context.setDefaultTimeout(15_000);
  return {
    browser,
    context,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/// Numbered screenshots of every page a test visits, into `dir`.
export function shooter(dir) {
  let n = 0;
  return async (page, name) => {
    if (!dir) return;
    n += 1;
    const file = join(dir, `${String(n).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.error(`screenshot ${file} (${page.url()})`);
  };
}

/// Walks the sign-in pages until `done(url)` holds: oidc-provider's devInteractions login form
/// and its consent prompt, authsvc's dev IdP page, and authsvc's consent page (allowed).
/// `user` is the login (and the dev IdP's user); each page is screenshot with `shot`.
export async function signIn(page, { user, done, shot, maxSteps = 8 }) {
  for (let step = 0; step < maxSteps; step += 1) {
    await page.waitForLoadState("domcontentloaded");
    const url = page.url();
    if (done(url)) return;
    if (await page.locator('input[name="login"]').count()) {
      await shot(page, "idp-login");
      await page.fill('input[name="login"]', user);
      await page.fill('input[name="password"]', "any-password");
      await clickAndWait(page, 'button[type="submit"]');
    } else if (await page.locator('input[name="prompt"][value="consent"]').count()) {
      await shot(page, "idp-consent");
      await clickAndWait(page, 'button[type="submit"]');
    } else if (await page.locator('form[action="/auth/dev/login"]').count()) {
      await shot(page, "dev-idp");
      await clickAndWait(page, `form[action="/auth/dev/login"]:has(input[name="user"][value="${user}"]) button`);
    } else if (await page.locator('form[action="/auth/consent"]').count()) {
      await shot(page, "consent");
      await clickAndWait(page, 'button[name="decision"][value="approve"]');
    } else {
      await shot(page, "unexpected");
      const text = (await page.locator("body").innerText()).slice(0, 500);
      throw new Error(`sign-in stuck at ${url}: ${text}`);
    }
  }
  throw new Error(`sign-in did not finish in ${maxSteps} steps; at ${page.url()}`);
}

async function clickAndWait(page, selector) {
  await Promise.all([page.waitForNavigation({ waitUntil: "domcontentloaded" }).catch(() => {}), page.click(selector)]);
}
