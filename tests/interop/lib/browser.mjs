// Debian's chromium driven by playwright-core, the login + consent steps of
// the proxy's pages, and a loopback "OAuth client" callback catcher.

import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from './deps.mjs';

import { waitFor } from './harness.mjs';

export const CHROMIUM = process.env.INTEROP_CHROMIUM ?? '/usr/bin/chromium';

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium); .ci/run does`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30_000,
  });
}

/** Where screenshots go (not in the repository). */
export function screenshotDir() {
  const d = path.join(process.env.TMPDIR || tmpdir(), 'mcp-oauth-proxy-screens');
  mkdirSync(d, { recursive: true });
  return d;
}

/**
 * Records the responses of main-frame document loads of `page` (the final,
 * non-redirect response of each navigation), so that a test can check the
 * headers of the page the browser is showing.
 */
export function trackDocuments(page) {
  const docs = [];
  page.on('response', (res) => {
    const req = res.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame() && !(res.status() >= 300 && res.status() < 400)) {
      docs.push(res);
    }
  });
  return {
    all: docs,
    last: () => docs[docs.length - 1],
  };
}

/**
 * The document the page shows: `login` (the local form, or, with identity
 * providers only, the "Sign in with …" buttons), `consent`, or `other`.
 */
export async function pageKind(page) {
  if (
    (await page.getByLabel('Username').count()) > 0 &&
    (await page.getByRole('button', { name: 'Sign in', exact: true }).count()) > 0
  ) {
    return 'login';
  }
  if ((await page.getByRole('button', { name: /^Sign in with / }).count()) > 0) return 'login';
  if ((await page.getByRole('button', { name: 'Allow' }).count()) > 0 && (await page.getByRole('button', { name: 'Deny' }).count()) > 0) {
    return 'consent';
  }
  return 'other';
}

async function waitForKind(page, kinds, what) {
  try {
    return await waitFor(
      what,
      async () => {
        const k = await pageKind(page);
        return kinds.includes(k) ? k : null;
      },
      { timeout: 15_000, interval: 100 },
    );
  } catch (e) {
    const text = (await page.locator('body').innerText().catch(() => '')).slice(0, 1500);
    throw new Error(`${e.message}; the browser is at ${page.url()} showing:\n${text}`);
  }
}

/** Fills and submits the login form (the page must be showing it). */
export async function submitLogin(page, { username, password }) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await Promise.all([
    page.waitForEvent('framenavigated', { timeout: 15_000 }),
    page.getByRole('button', { name: 'Sign in', exact: true }).click(),
  ]);
  await page.waitForLoadState('load');
}

/**
 * From the page the authorize request led to: logs in when the login page is
 * shown (else the session is reused), then clicks Allow or Deny on the consent
 * page. With `beforeConsent(page)` the caller can inspect the consent page
 * before the click. With `signIn(page)` the login page is handled by the
 * caller instead of the local form (e.g. signInWithProvider + the provider's
 * own pages), which must end back at the proxy. Returns after the click's
 * navigation has started.
 */
export async function loginAndConsent(page, { username, password, decision = 'Allow', onLogin, beforeConsent, signIn }) {
  const kind = await waitForKind(page, ['login', 'consent'], 'the login or consent page');
  if (kind === 'login') {
    if (onLogin) await onLogin(page);
    if (signIn) await signIn(page);
    else await submitLogin(page, { username, password });
    await waitForKind(page, ['consent'], 'the consent page after signing in');
  }
  if (beforeConsent) await beforeConsent(page);
  const button = page.getByRole('button', { name: decision, exact: true });
  await Promise.all([page.waitForEvent('framenavigated', { timeout: 15_000 }), button.click()]);
}

/**
 * A loopback HTTP server standing in for a native OAuth client's redirect
 * URI: `GET /callback?…` is recorded and answered with a small page.
 */
export async function startCatcher() {
  const calls = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    if (u.pathname !== '/callback') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const call = { query: Object.fromEntries(u.searchParams), rawQuery: u.search, method: req.method, time: Date.now() };
    calls.push(call);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Callback received</title><p id="done">You can close this window.</p>');
    for (const w of waiters.splice(0)) w();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    port,
    redirectUri: `http://127.0.0.1:${port}/callback`,
    calls,
    /** Resolves with the first call (from index `from` on) whose query satisfies `pred`. */
    async next({ from = 0, pred = () => true, timeout = 15_000 } = {}) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const found = calls.slice(from).find((c) => pred(c.query));
        if (found) return found;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`the callback catcher got no matching redirect within ${timeout} ms (got ${calls.length - from})`);
        await new Promise((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

// ---------------------------------------------------------------------------
// Identity providers (issue 11).

/**
 * A browser context that reaches loopback only: requests to any other host
 * are aborted at once (oidc-provider's dev pages @import a web font, which
 * must not wait on a network this machine does not have).
 */
export async function newLoopbackContext(browser, options = {}) {
  const ctx = await browser.newContext(options);
  await ctx.route(/^[a-z]+:\/\/(?!127\.0\.0\.1[:/]|localhost[:/]|\[::1\][:/])/i, (route) => route.abort('blockedbyclient'));
  return ctx;
}

/** The "Sign in with <displayName>" button of the proxy's login page. */
export function providerButton(page, displayName) {
  return page.getByRole('button', { name: `Sign in with ${displayName}`, exact: true });
}

/** Clicks "Sign in with <displayName>" and waits for the page it leads to. */
export async function signInWithProvider(page, displayName) {
  await Promise.all([page.waitForEvent('framenavigated', { timeout: 15_000 }), providerButton(page, displayName).click()]);
  await page.waitForLoadState('load').catch(() => {});
}

/**
 * Goes through oidc-provider's development interactions (tests/node/oidc-provider.mjs)
 * while the page is on `issuer`: the login form (fields `login`, `password`;
 * the login is the account id, any password) and the consent step
 * ("Continue"). Returns once the browser left the provider (back at the
 * proxy, or on an error page), or shows the fixture's "Held by the test"
 * page (its interceptCallback kept the answer). `cancel`: clicks
 * "[ Cancel ]" on the login form instead (the provider answers
 * error=access_denied).
 */
export async function signInAtOidcProvider(page, { issuer, login, password = 'any-password', cancel = false, timeout = 15_000 }) {
  const origin = new URL(issuer).origin;
  const deadline = Date.now() + timeout;
  const steps = [];
  for (;;) {
    await page.waitForLoadState('load').catch(() => {});
    const url = page.url();
    if (!url.startsWith(`${origin}/`)) return { steps };
    if ((await page.title().catch(() => '')) === 'Held by the test') return { steps, held: true };
    if (Date.now() > deadline) {
      const text = (await page.locator('body').innerText().catch(() => '')).slice(0, 1500);
      throw new Error(`still at the provider after ${timeout} ms (steps: ${steps.join(', ')}); at ${url}:\n${text}`);
    }
    const act = async (what, locator) => {
      steps.push(what);
      await Promise.all([page.waitForEvent('framenavigated', { timeout: 15_000 }), locator.click()]);
    };
    if ((await page.locator('input[name="login"]').count()) > 0) {
      if (cancel) {
        await act('cancel', page.getByRole('link', { name: '[ Cancel ]' }));
        continue;
      }
      await page.locator('input[name="login"]').fill(login);
      await page.locator('input[name="password"]').fill(password);
      await act('login', page.getByRole('button', { name: 'Sign-in' }));
    } else if ((await page.getByRole('button', { name: 'Continue' }).count()) > 0) {
      await act('consent', page.getByRole('button', { name: 'Continue' }));
    } else {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** `<title>` and the first `<h1>` of the page, for checking which message page it is. */
export async function pageHeading(page) {
  const title = await page.title().catch(() => '');
  const h1 = await page
    .locator('h1')
    .first()
    .innerText({ timeout: 1_000 })
    .catch(() => '');
  return { title, h1 };
}
