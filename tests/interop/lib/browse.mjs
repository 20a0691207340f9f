#!/usr/bin/env node
// The "user agent" for OAuth clients that are not written in JavaScript (the
// Python SDK client in tests/interop/python): opens an authorization URL in
// headless chromium, signs in on the proxy's login page, clicks Allow on the
// consent page, and lets chromium follow the redirect to the client's own
// loopback redirect URI (taken from the URL's `redirect_uri` parameter). The
// client's callback server receives the code; this script only prints the
// URL the browser finally landed on, as one line on stdout.
//
//   node tests/interop/lib/browse.mjs <authorization-url> <username> <password>
//
// Exit status: 0 when the browser reached the redirect URI, 1 on any failure
// (the reason and the page the browser was showing go to stderr), 64 on bad
// arguments.

import { launchBrowser, loginAndConsent } from './browser.mjs';

const USAGE = 'usage: node tests/interop/lib/browse.mjs <authorization-url> <username> <password>';

function fail(status, message) {
  process.stderr.write(`browse.mjs: ${message}\n`);
  process.exit(status);
}

const args = process.argv.slice(2);
if (args.length !== 3) fail(64, USAGE);
const [authorizationUrl, username, password] = args;

let redirectUri;
try {
  redirectUri = new URL(authorizationUrl).searchParams.get('redirect_uri');
} catch {
  fail(64, `not a URL: ${authorizationUrl}\n${USAGE}`);
}
if (!redirectUri) fail(64, 'the authorization URL has no redirect_uri parameter');

let status = 0;
const browser = await launchBrowser();
try {
  const page = await browser.newPage();
  try {
    await page.goto(authorizationUrl);
    await loginAndConsent(page, { username, password, decision: 'Allow' });
    await page.waitForURL((u) => u.href.startsWith(redirectUri), { timeout: 15_000, waitUntil: 'load' });
    process.stdout.write(`${page.url()}\n`);
  } catch (e) {
    status = 1;
    const text = (await page.locator('body').innerText({ timeout: 2_000 }).catch(() => '')).slice(0, 1500);
    process.stderr.write(`browse.mjs: ${e.message}\nthe browser is at ${page.url()} showing:\n${text}\n`);
  }
} finally {
  await browser.close();
}
process.exit(status);
