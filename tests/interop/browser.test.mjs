// The proxy's authorization server driven by a real browser (Debian's
// chromium through playwright-core): registration, the login and consent
// pages (with and without JavaScript), the redirect back to a loopback client,
// the code exchange, a call to the protected MCP route, code replay, Deny.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, loginAndConsent, pageKind, screenshotDir, startCatcher, submitLogin, trackDocuments } from './lib/browser.mjs';
import {
  PROTOCOL_VERSION,
  assertNoSecrets,
  discover,
  getJson,
  initializeMessage,
  mcpPost,
  pkcePair,
  readMcpMessages,
  registerClient,
  startStack,
  tokenRequest,
} from './lib/harness.mjs';

const CLIENT_NAME = 'Interop Browser Client';
const READ_TOOLS = ['read_note', 'list_notes', 'echo', 'slow_stream'];
const WRITE_TOOLS = ['write_note', 'delete_note'];

function assertFramingHeaders(res, what) {
  assert.ok(res, `no document response recorded for the ${what}`);
  return res.allHeaders().then((h) => {
    assert.equal((h['x-frame-options'] ?? '').toUpperCase(), 'DENY', `${what} (${res.url()}): X-Frame-Options`);
    const csp = h['content-security-policy'] ?? '';
    assert.match(csp, /frame-ancestors\s+'none'/, `${what} (${res.url()}): Content-Security-Policy ${JSON.stringify(csp)}`);
  });
}

/** The text of the page, for assertions and failure messages. */
const bodyText = (page) => page.locator('body').innerText();

describe('browser: login + consent pages in chromium', { timeout: 180_000 }, () => {
  let stack, catcher, browser, metadata, client;
  const secrets = { code: [], access_token: [], refresh_token: [] };
  const screens = screenshotDir();

  function checkLogs() {
    assertNoSecrets(stack.proxy.logs(), {
      ...secrets,
      password: stack.password,
      wrong_password: 'wrong-' + stack.password,
      upstream_token: stack.upstreamToken,
    });
  }

  function authorizeUrl({ state, challenge, scope = 'notes:read notes:write' }) {
    const u = new URL(metadata.authorization_endpoint);
    u.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: catcher.redirectUri,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      resource: stack.mcpUrl,
      scope,
    }).toString();
    return u.toString();
  }

  async function exchange(code, verifier) {
    const r = await tokenRequest(metadata, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: catcher.redirectUri,
      code_verifier: verifier,
      client_id: client.client_id,
      resource: stack.mcpUrl,
    });
    if (r.body.access_token) secrets.access_token.push(r.body.access_token);
    if (r.body.refresh_token) secrets.refresh_token.push(r.body.refresh_token);
    return r;
  }

  before(async () => {
    stack = await startStack();
    catcher = await startCatcher();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await catcher?.close();
    await stack?.stop();
  });

  test('discovery: RFC 8414 and RFC 9728 metadata, 401 challenge', async () => {
    metadata = await discover(stack.proxy.url);
    assert.equal(metadata.issuer, stack.proxy.url, 'issuer is public_url without a trailing slash');
    for (const k of ['registration_endpoint', 'authorization_endpoint', 'token_endpoint', 'revocation_endpoint']) {
      assert.equal(typeof metadata[k], 'string', `AS metadata lacks ${k}: ${JSON.stringify(metadata)}`);
      assert.ok(metadata[k].startsWith(`${stack.proxy.url}/`), `${k} ${metadata[k]} is under public_url`);
    }
    assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);
    assert.equal(metadata.authorization_response_iss_parameter_supported, true);

    const prm = await getJson(`${stack.proxy.url}/.well-known/oauth-protected-resource/notes/mcp`);
    assert.equal(prm.res.status, 200, `PRM: ${JSON.stringify(prm.body)}`);
    assert.equal(prm.body.resource, stack.mcpUrl);
    assert.deepEqual(prm.body.authorization_servers, [metadata.issuer]);

    const res = await mcpPost(stack.mcpUrl, initializeMessage());
    await res.arrayBuffer();
    assert.equal(res.status, 401, 'the MCP route without a token');
    const www = res.headers.get('www-authenticate') ?? '';
    assert.match(www, /^Bearer /, `WWW-Authenticate: ${www}`);
    assert.ok(
      www.includes(`resource_metadata="${stack.proxy.url}/.well-known/oauth-protected-resource/notes/mcp"`),
      `WWW-Authenticate: ${www}`,
    );

    client = await registerClient(metadata, {
      client_name: CLIENT_NAME,
      redirect_uris: [catcher.redirectUri],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    });
    assert.equal(typeof client.client_id, 'string', `registration answer: ${JSON.stringify(client)}`);
    assert.equal(client.client_secret, undefined, 'a public client gets no secret');
    checkLogs();
  });

  let allowed; // { code, verifier, tokens } from the Allow flow

  test('Allow (JavaScript on): login page, wrong password, consent page, code, tokens, MCP call', async () => {
    assert.ok(client, 'registration (previous test) failed');
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const docs = trackDocuments(page);
    try {
      const { verifier, challenge } = pkcePair();
      const from = catcher.calls.length;
      await page.goto(authorizeUrl({ state: 'a', challenge }));

      // The login page.
      assert.equal(await pageKind(page), 'login', `expected the login page at ${page.url()}:\n${await bodyText(page)}`);
      await assertFramingHeaders(docs.last(), 'login page');
      for (const name of ['Username', 'Password']) {
        const label = page.locator('label[for]', { hasText: name });
        assert.equal(await label.count(), 1, `one <label for=…> "${name}"`);
        const id = await label.getAttribute('for');
        assert.equal(await page.locator(`input[id="${id}"]`).count(), 1, `<label for="${id}"> "${name}" names an input`);
      }
      assert.equal(await page.getByLabel('Password').getAttribute('type'), 'password');
      await page.screenshot({ path: path.join(screens, 'login.png'), fullPage: true });

      // A wrong password: the login page again, with a readable message.
      await submitLogin(page, { username: stack.username, password: 'wrong-' + stack.password });
      assert.equal(await pageKind(page), 'login', `after a wrong password, expected the login page at ${page.url()}:\n${await bodyText(page)}`);
      const errText = await bodyText(page);
      assert.match(errText, /invalid|incorrect|wrong|fail|not match|unknown|denied|try again/i, `an error message on the login page:\n${errText}`);
      assert.doesNotMatch(errText, /panicked|stack backtrace|RUST_BACKTRACE/, 'no stack trace');
      assert.ok(!errText.includes(stack.password), 'the page does not echo the password');
      await page.screenshot({ path: path.join(screens, 'login-error.png'), fullPage: true });

      // The right password: the consent page.
      await loginAndConsent(page, {
        username: stack.username,
        password: stack.password,
        decision: 'Allow',
        beforeConsent: async (p) => {
          await assertFramingHeaders(docs.last(), 'consent page');
          const text = await bodyText(p);
          for (const want of [CLIENT_NAME, '127.0.0.1', 'notes', 'notes:read', 'notes:write', ...READ_TOOLS, ...WRITE_TOOLS]) {
            assert.ok(text.includes(want), `the consent page names ${JSON.stringify(want)}:\n${text}`);
          }
          await p.screenshot({ path: path.join(screens, 'consent.png'), fullPage: true });
        },
      });

      // Allow: back at the client with code, the same state and iss.
      const cb = await catcher.next({ from });
      secrets.code.push(cb.query.code);
      assert.equal(typeof cb.query.code, 'string', `callback query: ${cb.rawQuery}`);
      assert.equal(cb.query.state, 'a', 'state comes back unchanged (one character is fine)');
      assert.equal(cb.query.iss, metadata.issuer, 'iss equals the metadata issuer');
      assert.equal(cb.query.error, undefined);

      // The code exchange.
      const { res, body } = await exchange(cb.query.code, verifier);
      assert.equal(res.status, 200, `token response: ${JSON.stringify(body)}`);
      assert.match(res.headers.get('cache-control') ?? '', /no-store/);
      assert.equal(body.token_type, 'Bearer');
      assert.equal(typeof body.access_token, 'string');
      assert.equal(typeof body.refresh_token, 'string');
      assert.ok(Number.isInteger(body.expires_in) && body.expires_in > 0, `expires_in ${body.expires_in}`);
      assert.deepEqual(new Set(String(body.scope).split(' ')), new Set(['notes:read', 'notes:write']), `scope ${body.scope}`);
      allowed = { code: cb.query.code, verifier, tokens: body };

      // The MCP route with the access token.
      const init = await mcpPost(stack.mcpUrl, initializeMessage(1), { token: body.access_token });
      const initMsgs = await readMcpMessages(init);
      assert.equal(init.status, 200, `initialize: ${JSON.stringify(initMsgs)}`);
      assert.ok(initMsgs.find((m) => m.id === 1)?.result?.serverInfo, `initialize result: ${JSON.stringify(initMsgs)}`);
      const sessionId = init.headers.get('mcp-session-id');
      assert.ok(sessionId, 'the upstream session id is passed through');
      const opts = { token: body.access_token, sessionId, protocolVersion: PROTOCOL_VERSION };
      const notified = await mcpPost(stack.mcpUrl, { jsonrpc: '2.0', method: 'notifications/initialized' }, opts);
      await notified.arrayBuffer();
      assert.equal(notified.status, 202);
      const list = await mcpPost(stack.mcpUrl, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, opts);
      const listMsgs = await readMcpMessages(list);
      assert.equal(list.status, 200, `tools/list: ${JSON.stringify(listMsgs)}`);
      const names = listMsgs.find((m) => m.id === 2)?.result?.tools?.map((t) => t.name) ?? [];
      assert.ok(names.includes('echo'), `tools/list names: ${names}`);

      // The upstream saw its own credential, never the client's token.
      const reqs = await stack.upstream.requests();
      const mcpReqs = reqs.filter((r) => r.path === '/mcp');
      assert.ok(mcpReqs.length >= 3, `upstream got ${mcpReqs.length} MCP requests`);
      for (const r of mcpReqs) {
        assert.equal(r.headers.authorization, `Bearer ${stack.upstreamToken}`);
        assert.ok(!JSON.stringify(r.raw_headers).includes(body.access_token), 'the access token never goes upstream');
      }

      // The code is single use.
      const replay = await exchange(cb.query.code, verifier);
      assert.equal(replay.res.status, 400, `replayed code: ${JSON.stringify(replay.body)}`);
      assert.equal(replay.body.error, 'invalid_grant');
    } finally {
      await ctx.close();
    }
    checkLogs();
  });

  test('a replayed code revokes the refresh token it issued (spec-notes: "revokes what it issued")', async () => {
    assert.ok(allowed, 'the Allow flow (previous test) failed');
    const r = await tokenRequest(metadata, {
      grant_type: 'refresh_token',
      refresh_token: allowed.tokens.refresh_token,
      client_id: client.client_id,
      resource: stack.mcpUrl,
    });
    if (r.body.access_token) secrets.access_token.push(r.body.access_token);
    if (r.body.refresh_token) secrets.refresh_token.push(r.body.refresh_token);
    assert.equal(r.res.status, 400, `refresh after code replay: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error, 'invalid_grant');
    checkLogs();
  });

  test('Deny: the client gets error=access_denied with state and iss', async () => {
    assert.ok(client, 'registration failed');
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    try {
      const { challenge } = pkcePair();
      const from = catcher.calls.length;
      await page.goto(authorizeUrl({ state: 'd', challenge, scope: 'notes:read' }));
      await loginAndConsent(page, { username: stack.username, password: stack.password, decision: 'Deny' });
      const cb = await catcher.next({ from });
      assert.equal(cb.query.error, 'access_denied', `callback query: ${cb.rawQuery}`);
      assert.equal(cb.query.state, 'd');
      assert.equal(cb.query.iss, metadata.issuer);
      assert.equal(cb.query.code, undefined, 'no code on Deny');
    } finally {
      await ctx.close();
    }
    checkLogs();
  });

  test('Allow with JavaScript disabled', async () => {
    assert.ok(client, 'registration failed');
    const ctx = await browser.newContext({ javaScriptEnabled: false });
    const page = await ctx.newPage();
    const docs = trackDocuments(page);
    try {
      const { verifier, challenge } = pkcePair();
      const from = catcher.calls.length;
      await page.goto(authorizeUrl({ state: 'x', challenge, scope: 'notes:read' }));
      assert.equal(await pageKind(page), 'login', `expected the login page at ${page.url()}:\n${await bodyText(page)}`);
      await assertFramingHeaders(docs.last(), 'login page (no JS)');
      await loginAndConsent(page, {
        username: stack.username,
        password: stack.password,
        decision: 'Allow',
        beforeConsent: async (p) => {
          await assertFramingHeaders(docs.last(), 'consent page (no JS)');
          const text = await bodyText(p);
          for (const want of [CLIENT_NAME, 'notes', 'notes:read', ...READ_TOOLS]) {
            assert.ok(text.includes(want), `the consent page names ${JSON.stringify(want)}:\n${text}`);
          }
          await p.screenshot({ path: path.join(screens, 'consent-nojs.png'), fullPage: true });
        },
      });
      const cb = await catcher.next({ from });
      secrets.code.push(cb.query.code);
      assert.equal(typeof cb.query.code, 'string', `callback query: ${cb.rawQuery}`);
      assert.equal(cb.query.state, 'x');
      assert.equal(cb.query.iss, metadata.issuer);
      const { res, body } = await exchange(cb.query.code, verifier);
      assert.equal(res.status, 200, `token response: ${JSON.stringify(body)}`);
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.scope, 'notes:read');

      const init = await mcpPost(stack.mcpUrl, initializeMessage(1), { token: body.access_token });
      const msgs = await readMcpMessages(init);
      assert.equal(init.status, 200, `initialize: ${JSON.stringify(msgs)}`);
    } finally {
      await ctx.close();
    }
    checkLogs();
  });
});
