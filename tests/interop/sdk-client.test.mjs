// The official TypeScript MCP SDK client (@modelcontextprotocol/sdk) against
// the proxy: discovery from the 401, dynamic registration, authorization in
// chromium, code exchange, tool calls, a refresh after the access token
// expired (with rotation), and a refresh after a proxy restart on the same
// state dir.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, startCatcher } from './lib/browser.mjs';
import { assertNoSecrets, discover, initializeMessage, mcpPost, startStack, waitFor } from './lib/harness.mjs';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from './lib/deps.mjs';
import { BrowserOAuthProvider } from './lib/oauth-provider.mjs';

const ACCESS_TTL_S = 3;

function newClient() {
  return new Client({ name: 'mcp-oauth-proxy-interop-sdk', version: '0.0.0' });
}

function textOf(result) {
  return (result.content ?? []).map((c) => c.text ?? '').join('');
}

describe('official TypeScript SDK client through the proxy', { timeout: 180_000 }, () => {
  let stack, catcher, browser, provider, metadata;
  const codes = [];
  const sdkErrors = [];

  function checkLogs() {
    const tokens = provider?.log.savedTokens ?? [];
    assertNoSecrets(stack.proxy.logs(), {
      code: codes,
      access_token: tokens.map((t) => t.access_token),
      refresh_token: tokens.map((t) => t.refresh_token),
      password: stack.password,
      upstream_token: stack.upstreamToken,
    });
  }

  /**
   * Polls the MCP route with the current access token until the proxy refuses
   * it as expired; checks the challenge of that refusal.
   */
  async function waitUntilAccessTokenExpired() {
    const token = provider.tokens().access_token;
    const www = await waitFor(
      'the access token to expire (401 from the MCP route)',
      async () => {
        const res = await mcpPost(stack.mcpUrl, initializeMessage('expiry-probe'), { token });
        await res.arrayBuffer();
        return res.status === 401 && (res.headers.get('www-authenticate') ?? '<no WWW-Authenticate>');
      },
      { timeout: (ACCESS_TTL_S + 10) * 1000, interval: 250 },
    );
    assert.match(www, /^Bearer /, `WWW-Authenticate for an expired token: ${www}`);
    assert.ok(www.includes(`resource_metadata="${stack.proxy.url}/.well-known/oauth-protected-resource/notes/mcp"`), www);
    assert.match(www, /error="invalid_token"/, `WWW-Authenticate for an expired token: ${www}`);
  }

  /** When the SDK last saved tokens, to know whether the access token should still be valid. */
  let tokensSavedAt = 0;

  function track(client, transport) {
    transport.onerror = (e) => sdkErrors.push(e);
    client.onerror = (e) => sdkErrors.push(e);
    return client;
  }

  before(async () => {
    stack = await startStack({ tokens: { access_ttl: `${ACCESS_TTL_S}s` } });
    catcher = await startCatcher();
    browser = await launchBrowser();
    provider = new BrowserOAuthProvider({ browser, catcher, username: stack.username, password: stack.password });
    const save = provider.saveTokens.bind(provider);
    provider.saveTokens = (tokens) => {
      tokensSavedAt = Date.now();
      save(tokens);
    };
  });

  after(async () => {
    if (process.env.INTEROP_VERBOSE && sdkErrors.length) console.error(`SDK client errors (informational):\n${sdkErrors.map((e) => `  ${e.stack ?? e}`).join('\n')}`);
    await browser?.close();
    await catcher?.close();
    await stack?.stop();
  });

  let client2;

  test('connect: 401 → discovery → registration → browser login/consent → finishAuth → tools', async () => {
    metadata = await discover(stack.proxy.url);

    const transport1 = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider });
    const client1 = track(newClient(), transport1);
    await assert.rejects(client1.connect(transport1), UnauthorizedError, 'the first connect needs authorization');

    assert.equal(provider.log.registrations.length, 1, 'the SDK registered a client (DCR)');
    assert.equal(typeof provider.clientInformation()?.client_id, 'string');
    assert.equal(provider.log.authorizationUrls.length, 1, 'the SDK sent the user agent to the authorization endpoint');
    const authUrl = provider.log.authorizationUrls[0];
    assert.ok(authUrl.href.startsWith(metadata.authorization_endpoint), `${authUrl} is the advertised authorization_endpoint`);
    assert.equal(authUrl.searchParams.get('resource'), stack.mcpUrl, 'resource from PRM');
    assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');

    assert.ok(provider.pendingAuthorization, 'redirectToAuthorization was called');
    const { query, sentState } = await provider.pendingAuthorization;
    codes.push(query.code);
    assert.equal(query.error, undefined, `authorization error: ${JSON.stringify(query)}`);
    assert.equal(typeof query.code, 'string', `callback query: ${JSON.stringify(query)}`);
    assert.equal(query.state, sentState, 'state round-trips');
    assert.equal(query.iss, metadata.issuer, 'iss equals the metadata issuer (RFC 9207)');

    await transport1.finishAuth(query.code);
    assert.equal(provider.log.savedTokens.length, 1, 'finishAuth saved tokens');
    const t = provider.tokens();
    assert.equal(typeof t.access_token, 'string');
    assert.equal(typeof t.refresh_token, 'string', 'a refresh token is issued');
    assert.equal(t.token_type.toLowerCase(), 'bearer');

    const transport2 = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider });
    client2 = track(newClient(), transport2);
    await client2.connect(transport2);
    const { tools } = await client2.listTools();
    const names = tools.map((x) => x.name);
    assert.ok(names.includes('echo'), `listTools: ${names}`);
    const result = await client2.callTool({ name: 'echo', arguments: { message: 'hi' } });
    assert.ok(!result.isError, `echo: ${JSON.stringify(result)}`);
    assert.match(textOf(result), /hi/);
    checkLogs();
  });

  test('an expired access token is refreshed by the SDK through the proxy, and the refresh token rotates', async () => {
    assert.ok(client2, 'the connect test failed');
    const before = provider.tokens();
    const savedBefore = provider.log.savedTokens.length;
    await waitUntilAccessTokenExpired();

    const result = await client2.callTool({ name: 'echo', arguments: { message: 'hi after refresh' } });
    assert.match(textOf(result), /hi after refresh/);

    assert.ok(provider.log.savedTokens.length > savedBefore, 'the SDK saved refreshed tokens');
    const afterT = provider.tokens();
    assert.notEqual(afterT.access_token, before.access_token, 'a new access token');
    assert.equal(typeof afterT.refresh_token, 'string', `refresh response: ${JSON.stringify(Object.keys(afterT))}`);
    assert.notEqual(afterT.refresh_token, before.refresh_token, 'the refresh token rotated');
    assert.equal(provider.log.registrations.length, 1, 'no new registration');
    checkLogs();
  });

  test('after a restart on the same state dir the client is still registered and its refresh token works', async (t) => {
    assert.ok(client2, 'the connect test failed');
    await client2.close();
    const savedBefore = provider.log.savedTokens.length;
    const before = provider.tokens();

    await stack.proxy.restart();
    // An access token issued before the restart is still accepted after it
    // (the signing key lives in the state dir), when it has time left.
    const left = tokensSavedAt + before.expires_in * 1000 - Date.now();
    if (left > 1000) {
      const res = await mcpPost(stack.mcpUrl, initializeMessage('after-restart'), { token: before.access_token });
      await res.arrayBuffer();
      assert.equal(res.status, 200, `an unexpired access token (${left} ms left) after the restart`);
    } else {
      t.diagnostic(`the access token had only ${left} ms left after the restart; its acceptance was not checked`);
    }
    await waitUntilAccessTokenExpired();

    const transport3 = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider });
    const client3 = track(newClient(), transport3);
    try {
      await client3.connect(transport3);
      const result = await client3.callTool({ name: 'echo', arguments: { message: 'hi after restart' } });
      assert.match(textOf(result), /hi after restart/);
    } finally {
      await client3.close();
    }
    assert.ok(provider.log.savedTokens.length > savedBefore, 'the SDK refreshed after the restart');
    assert.notEqual(provider.tokens().refresh_token, before.refresh_token, 'the refresh token rotated again');
    assert.equal(provider.log.registrations.length, 1, 'the registration survived the restart (no new DCR)');
    assert.equal(provider.log.authorizationUrls.length, 1, 'no new browser authorization was needed');
    checkLogs();
  });
});
