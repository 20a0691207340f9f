// Self-test of the interop harness, independent of the OAuth endpoints: the
// upstream and the proxy start, the proxy restarts on the same port and state
// dir, chromium launches and reaches the loopback callback catcher. When this
// fails, the environment (binary, node fixtures, chromium) is the problem.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, startCatcher } from './lib/browser.mjs';
import { assertNoSecrets, startStack } from './lib/harness.mjs';

describe('interop harness', { timeout: 90_000 }, () => {
  let stack, catcher, browser;

  before(async () => {
    stack = await startStack();
    catcher = await startCatcher();
  });

  after(async () => {
    await browser?.close();
    await catcher?.close();
    await stack?.stop();
  });

  test('upstream and proxy are up; the proxy restarts on the same port and state dir', async () => {
    const up = await fetch(`${stack.upstream.url}/healthz`);
    assert.equal(up.status, 200);
    assert.equal((await fetch(`${stack.proxy.url}/healthz`)).status, 200);
    const port = stack.proxy.port;
    await stack.proxy.restart();
    assert.equal(stack.proxy.port, port);
    assert.equal((await fetch(`${stack.proxy.url}/healthz`)).status, 200);
    assert.ok(existsSync(stack.proxy.stateDir), 'the state dir exists');
    assert.match(stack.proxy.logs(), /listening[\s\S]*listening/, 'two runs logged "listening"');
    assertNoSecrets(stack.proxy.logs(), { password: stack.password, upstream_token: stack.upstreamToken });
  });

  test('chromium launches and reaches the callback catcher', async () => {
    browser = await launchBrowser();
    const page = await browser.newPage();
    await page.goto(`${catcher.redirectUri}?code=c0de&state=a`);
    assert.equal(await page.locator('#done').count(), 1);
    const cb = await catcher.next();
    assert.deepEqual(cb.query, { code: 'c0de', state: 'a' });
    await page.close();
  });
});
