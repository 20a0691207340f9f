// Scope policy with the official TypeScript SDK client (@modelcontextprotocol/sdk)
// and real upstreams, through the proxy:
//
// - Streamable HTTP in front of tests/node/upstream.mjs: tools/list filtered
//   by the token's scopes; a tool in no scope refused with JSON-RPC -32602
//   before the upstream; a tool in an ungranted scope refused with 403
//   insufficient_scope, then step-up re-authorisation in chromium; progress
//   notifications arriving as they are sent; the Origin check.
// - Legacy HTTP+SSE (2024-11-05) in front of the unmodified
//   @modelcontextprotocol/server-everything in `sse` mode, driven by the SDK's
//   SSEClientTransport: filtered list, allowed and refused calls (refusals
//   arrive on the event stream), two sessions at once that must not mix,
//   keep-alive comments, the session ending with its stream.
// - Audit lines for refused calls; no secret in the proxy's log.
//
// What the SDK (1.32.2, pinned in tests/node/package.json) does with the
// proxy's answers, as observed here:
// - StreamableHTTPClientTransport on 403 `insufficient_scope` calls auth()
//   with the challenged scope. auth() prefers a held refresh token: it
//   refreshes, which cannot widen the grant (RFC 6749 §6), retries, gets the
//   same 403 and gives up with "Server returned 403 after trying upscoping"
//   (modelcontextprotocol/typescript-sdk#2255). Without a refresh token it
//   starts an authorization with the challenged scope, calls
//   redirectToAuthorization() and throws UnauthorizedError: the application
//   then waits for the redirect, calls transport.finishAuth(code) and retries
//   the call. The test does what such a client does (drop the refresh token
//   that cannot step up, reconnect because the transport refuses to act twice
//   on the same challenge, call again) and accepts the SDK re-authorising by
//   itself too, should a newer SDK do so.
// - SSEClientTransport has no step-up at all: a 403 on the message POST is
//   a plain Error "Error POSTing to endpoint (HTTP 403)".

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, startCatcher } from './lib/browser.mjs';
import { Client, McpError, SSEClientTransport, StreamableHTTPClientTransport, UnauthorizedError } from './lib/deps.mjs';
import { assertNoSecrets, initializeMessage, mcpPost, readMcpMessages, startEverything, startStack, waitFor } from './lib/harness.mjs';
import { BrowserOAuthProvider } from './lib/oauth-provider.mjs';

const NOTES_SCOPES = {
  'notes:read': ['read_note', 'list_*', 'echo', 'slow_stream'],
  'notes:write': ['write_note'],
};
const READ_TOOLS = ['echo', 'list_notes', 'read_note', 'slow_stream'];

const LEGACY_PATH = '/legacy/sse';
const LEGACY_SCOPES = {
  'everything:basic': ['echo', 'get-sum'],
  'everything:media': ['get-tiny-image'],
};
const KEEPALIVE_S = 1;

function newClient(name = 'mcp-oauth-proxy-interop-policy') {
  return new Client({ name, version: '0.0.0' });
}

function textOf(result) {
  return (result.content ?? []).map((c) => c.text ?? '').join('');
}

const sorted = (xs) => [...xs].sort();

/** `fetch` for a transport that records each request's method, URL, status and WWW-Authenticate. */
function recordingFetch(log) {
  return async (url, init) => {
    const res = await fetch(url, init);
    log.push({
      method: init?.method ?? 'GET',
      url: String(url),
      status: res.status,
      wwwAuthenticate: res.headers.get('www-authenticate'),
      time: Date.now(),
    });
    return res;
  };
}

/** The auth-params of a `Bearer …` challenge. */
function challengeParams(header) {
  assert.match(header ?? '', /^Bearer /, `WWW-Authenticate: ${header}`);
  const out = {};
  for (const m of header.matchAll(/([A-Za-z_]+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

/** Settles a promise into `{ result }` or `{ error }`. */
const settle = (p) => p.then((result) => ({ result }), (error) => ({ error }));

/** The upstream.mjs records of tools/call requests for `tool`. */
async function upstreamCalls(upstream, tool) {
  const reqs = await upstream.requests();
  return reqs.filter((r) => {
    if (r.path !== '/mcp' || typeof r.body !== 'string') return false;
    try {
      return [JSON.parse(r.body)].flat().some((m) => m?.method === 'tools/call' && m?.params?.name === tool);
    } catch {
      return false;
    }
  });
}

describe('scope policy through the proxy with the official SDK client', { timeout: 240_000 }, () => {
  let stack, everything, catcher, browser;
  let provider; // notes route
  let legacyProvider; // legacy route
  const codes = [];
  const httpLog = []; // every request of the notes transports
  const sdkErrors = [];
  let notes; // { transport, client } on the notes route
  let everythingTools; // names server-everything lists without the proxy
  const opened = [];

  function checkLogs() {
    const tokens = [...(provider?.log.savedTokens ?? []), ...(legacyProvider?.log.savedTokens ?? [])];
    assertNoSecrets(stack.proxy.logs(), {
      code: codes,
      access_token: tokens.map((t) => t.access_token),
      refresh_token: tokens.map((t) => t.refresh_token),
      password: stack.password,
      upstream_token: stack.upstreamToken,
    });
  }

  /** Audit lines of the proxy log that mention `tool` (target "audit"). */
  function auditLinesFor(tool) {
    return stack.proxy
      .logs()
      .split('\n')
      .filter((l) => /\baudit\b/.test(l) && l.includes(tool));
  }

  function assertAudited({ tool, route, client_id, missing }) {
    const lines = auditLinesFor(tool);
    assert.ok(lines.length > 0, `an audit line for the refused ${tool}; proxy log:\n${stack.proxy.logs().slice(-4000)}`);
    const line = lines.at(-1);
    for (const want of [stack.username, client_id, route, tool, 'missing_scope']) {
      assert.ok(line.includes(want), `the audit line names ${JSON.stringify(want)}: ${line}`);
    }
    if (missing) assert.ok(line.includes(missing), `the audit line names the missing scope ${missing}: ${line}`);
  }

  function track(client, transport) {
    transport.onerror = (e) => sdkErrors.push(e);
    client.onerror = (e) => sdkErrors.push(e);
    opened.push(client);
    return client;
  }

  /** Waits for the browser authorization started by redirectToAuthorization, then exchanges the code. */
  async function finishBrowserAuthorization(p, transport) {
    assert.ok(p.pendingAuthorization, 'redirectToAuthorization was called');
    const { query, sentState } = await p.pendingAuthorization;
    p.pendingAuthorization = undefined;
    if (query.code) codes.push(query.code);
    assert.equal(query.error, undefined, `authorization error: ${JSON.stringify(query)}`);
    assert.equal(typeof query.code, 'string', `callback query: ${JSON.stringify(query)}`);
    assert.equal(query.state, sentState, 'state round-trips');
    await transport.finishAuth(query.code);
  }

  async function connectNotes() {
    const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: recordingFetch(httpLog) });
    const client = track(newClient(), transport);
    await client.connect(transport);
    return { transport, client };
  }

  async function connectLegacy(name) {
    const transport = new SSEClientTransport(new URL(`${stack.proxy.url}${LEGACY_PATH}`), { authProvider: legacyProvider });
    const client = track(newClient(name), transport);
    await client.connect(transport);
    return { transport, client };
  }

  before(async () => {
    everything = await startEverything({ mode: 'sse' });
    stack = await startStack({
      proxyOptions: {
        scopes: NOTES_SCOPES,
        defaultScopes: ['notes:read'],
        server: { sse_keepalive: `${KEEPALIVE_S}s` },
        routes: [
          {
            name: 'legacy',
            path: LEGACY_PATH,
            upstream: everything.sseUrl,
            transport: 'sse',
            scopes: LEGACY_SCOPES,
            defaultScopes: ['everything:basic'],
          },
        ],
      },
    });
    catcher = await startCatcher();
    browser = await launchBrowser();
    provider = new BrowserOAuthProvider({ browser, catcher, username: stack.username, password: stack.password, clientName: 'Interop Policy Client' });
    legacyProvider = new BrowserOAuthProvider({
      browser,
      catcher,
      username: stack.username,
      password: stack.password,
      clientName: 'Interop Legacy SSE Client',
    });
  });

  after(async () => {
    if (process.env.INTEROP_VERBOSE && sdkErrors.length) {
      console.error(`SDK client errors (informational):\n${sdkErrors.map((e) => `  ${e.stack ?? e}`).join('\n')}`);
    }
    for (const c of opened) await c.close().catch(() => {});
    await browser?.close();
    await catcher?.close();
    await stack?.stop();
    await everything?.stop();
  });

  // -------------------------------------------------------------------------
  // Streamable HTTP

  test('Streamable HTTP: login + consent with notes:read only; tools/list is filtered', async () => {
    const transport1 = new StreamableHTTPClientTransport(new URL(stack.mcpUrl), { authProvider: provider, fetch: recordingFetch(httpLog) });
    const client1 = track(newClient(), transport1);
    await assert.rejects(client1.connect(transport1), UnauthorizedError, 'the first connect needs authorization');
    const authUrl = provider.log.authorizationUrls[0];
    assert.ok(authUrl, 'the SDK sent the user agent to the authorization endpoint');
    assert.equal(authUrl.searchParams.get('scope'), 'notes:read', `the SDK asks for the 401's scope (the route's default_scopes): ${authUrl}`);
    assert.equal(authUrl.searchParams.get('resource'), stack.mcpUrl);
    await finishBrowserAuthorization(provider, transport1);
    assert.equal(provider.tokens().scope, 'notes:read', `granted scope: ${JSON.stringify(provider.tokens().scope)}`);
    const consent = provider.log.consentTexts.at(-1) ?? '';
    // The consent page names the scope and the tool patterns it unlocks (as configured: `list_*`).
    for (const want of ['notes:read', ...NOTES_SCOPES['notes:read']]) assert.ok(consent.includes(want), `the consent page names ${want}:\n${consent}`);
    assert.ok(!consent.includes('notes:write'), `only notes:read was asked for:\n${consent}`);

    notes = await connectNotes();
    const { tools } = await notes.client.listTools();
    assert.deepEqual(sorted(tools.map((x) => x.name)), READ_TOOLS, 'exactly the tools of notes:read');
    const read = await notes.client.callTool({ name: 'read_note', arguments: { name: 'welcome' } });
    assert.ok(!read.isError, `read_note: ${JSON.stringify(read)}`);
    assert.match(textOf(read), /Hello from the test upstream/);
    checkLogs();
  });

  test('Streamable HTTP: a tool in no scope is refused with JSON-RPC -32602 and never reaches the upstream', async () => {
    assert.ok(notes, 'the login test failed');
    const { error } = await settle(notes.client.callTool({ name: 'delete_note', arguments: { name: 'welcome' } }));
    assert.ok(error instanceof McpError, `delete_note: expected an McpError, got ${error?.stack ?? JSON.stringify(error)}`);
    assert.equal(error.code, -32602, `delete_note: ${error.message}`);
    assert.match(error.message, /delete_note/);
    assert.deepEqual(await upstreamCalls(stack.upstream, 'delete_note'), [], 'the upstream never got a tools/call for delete_note');
    const list = await notes.client.callTool({ name: 'list_notes', arguments: {} });
    assert.match(textOf(list), /welcome/, 'the note still exists');
    assertAudited({ tool: 'delete_note', route: 'notes', client_id: provider.clientInformation().client_id });
    checkLogs();
  });

  test('Streamable HTTP: write_note → 403 insufficient_scope → step-up in chromium → the call succeeds', async (t) => {
    assert.ok(notes, 'the login test failed');
    const before = { urls: provider.log.authorizationUrls.length, saved: provider.log.savedTokens.length, http: httpLog.length };
    const args = { name: 'stepped-up', content: 'written after step-up' };

    const first = await settle(notes.client.callTool({ name: 'write_note', arguments: args }));
    assert.equal(first.result, undefined, `write_note with notes:read only must not succeed: ${JSON.stringify(first.result)}`);
    const refusals = httpLog.slice(before.http).filter((r) => r.status === 403);
    assert.ok(refusals.length >= 1, `a 403 for write_note; requests: ${JSON.stringify(httpLog.slice(before.http))}`);
    const ch = challengeParams(refusals[0].wwwAuthenticate);
    assert.equal(ch.error, 'insufficient_scope', `WWW-Authenticate: ${refusals[0].wwwAuthenticate}`);
    assert.deepEqual(sorted(ch.scope.split(' ')), ['notes:read', 'notes:write'], `challenged scope = token scopes + the missing one: ${refusals[0].wwwAuthenticate}`);
    assert.equal(ch.resource_metadata, `${stack.proxy.url}/.well-known/oauth-protected-resource/notes/mcp`);
    for (const r of refusals) assert.equal(r.wwwAuthenticate, refusals[0].wwwAuthenticate, 'the same challenge each time (the SDK loops on a changing one)');
    assert.deepEqual(await upstreamCalls(stack.upstream, 'write_note'), [], 'the refused write_note never reached the upstream');
    assertAudited({ tool: 'write_note', route: 'notes', client_id: provider.clientInformation().client_id, missing: 'notes:write' });

    let { transport, client } = notes;
    if (provider.log.authorizationUrls.length === before.urls) {
      // SDK 1.32.2 with a refresh token: refresh, same 403, give up (typescript-sdk#2255).
      assert.match(String(first.error?.message), /403 after trying upscoping/, `the SDK's error: ${first.error?.stack ?? first.error}`);
      assert.equal(provider.log.savedTokens.length, before.saved + 1, 'the SDK refreshed instead of re-authorising');
      assert.equal(provider.tokens().scope, 'notes:read', 'a refresh does not widen the grant');
      assert.equal(refusals.length, 2, 'the original call and the retry after the refresh were refused');
      t.diagnostic('SDK 1.32.2 refreshed on 403 insufficient_scope (cannot widen scope) and gave up; the client drops the refresh token and calls again');
      // What a client does with that error: a refresh token cannot step up, so
      // forget it; reconnect (this transport will not act on the same
      // challenge twice) and call again, so that the SDK's own 403 handling
      // starts an authorization with the challenged scope.
      provider.forgetRefreshToken();
      await client.close();
      ({ transport, client } = await connectNotes());
      notes = { transport, client };
      const second = await settle(client.callTool({ name: 'write_note', arguments: args }));
      assert.ok(second.error instanceof UnauthorizedError, `after the 403 the SDK redirects and throws UnauthorizedError: ${second.error?.stack ?? JSON.stringify(second.result)}`);
    } else {
      assert.ok(first.error instanceof UnauthorizedError, `the SDK redirected and throws UnauthorizedError: ${first.error?.stack ?? first.error}`);
    }
    assert.equal(provider.log.authorizationUrls.length, before.urls + 1, 'the SDK re-authorised once');
    const authUrl = provider.log.authorizationUrls.at(-1);
    const asked = (authUrl.searchParams.get('scope') ?? '').split(' ');
    assert.ok(asked.includes('notes:write') && asked.includes('notes:read'), `the step-up authorization asks for the challenged scope: ${authUrl}`);
    assert.equal(authUrl.searchParams.get('resource'), stack.mcpUrl);

    // The "user" consents in chromium; the client exchanges the code and calls again.
    await finishBrowserAuthorization(provider, transport);
    const consent = provider.log.consentTexts.at(-1) ?? '';
    for (const want of ['notes:write', 'write_note']) assert.ok(consent.includes(want), `the step-up consent page names ${want}:\n${consent}`);
    assert.deepEqual(sorted(provider.tokens().scope.split(' ')), ['notes:read', 'notes:write'], `the new token's scope: ${provider.tokens().scope}`);

    const result = await client.callTool({ name: 'write_note', arguments: args });
    assert.ok(!result.isError, `write_note after step-up: ${JSON.stringify(result)}`);
    assert.match(textOf(result), /wrote stepped-up/);
    assert.equal((await upstreamCalls(stack.upstream, 'write_note')).length, 1, 'exactly one write_note reached the upstream');
    const { tools } = await client.listTools();
    assert.deepEqual(sorted(tools.map((x) => x.name)), sorted([...READ_TOOLS, 'write_note']), 'the list now includes write_note (delete_note is in no scope)');
    checkLogs();
  });

  test('Streamable HTTP: progress notifications arrive as they are sent', async (t) => {
    assert.ok(notes, 'the login test failed');
    const arrivals = [];
    const start = Date.now();
    const result = await notes.client.callTool({ name: 'slow_stream', arguments: { count: 4, interval_ms: 300 } }, undefined, {
      onprogress: (p) => arrivals.push({ at: Date.now(), progress: p.progress, total: p.total }),
    });
    const done = Date.now();
    assert.match(textOf(result), /sent 4 of 4 notifications/);
    assert.deepEqual(
      arrivals.map((a) => a.progress),
      [1, 2, 3, 4],
      `progress notifications: ${JSON.stringify(arrivals)}`,
    );
    const spread = arrivals.at(-1).at - arrivals[0].at;
    const rel = arrivals.map((a) => a.at - start);
    t.diagnostic(`progress arrivals at ${rel.join(', ')} ms after the call, result at ${done - start} ms`);
    assert.ok(spread >= 600, `progress spread over ${spread} ms (arrivals at ${rel} ms), not in one burst`);
    assert.ok(done - arrivals[0].at >= 600, `the first progress arrived ${done - arrivals[0].at} ms before the result`);
  });

  test('Origin: a foreign browser Origin gets 403 and never reaches the upstream; the proxy origin works', async () => {
    assert.ok(notes, 'the login test failed');
    const token = provider.tokens().access_token;
    const marker = `origin-probe-${Date.now()}`;
    const msg = (name) => ({ ...initializeMessage(name), params: { ...initializeMessage().params, clientInfo: { name, version: '0' } } });
    const headers = (origin) => ({
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${token}`,
      origin,
    });
    const evil = await fetch(stack.mcpUrl, { method: 'POST', headers: headers('http://evil.example'), body: JSON.stringify(msg(`${marker}-evil`)) });
    const evilBody = await evil.text();
    assert.equal(evil.status, 403, `Origin: http://evil.example → ${evil.status} ${evilBody}`);
    const own = await fetch(stack.mcpUrl, { method: 'POST', headers: headers(stack.proxy.url), body: JSON.stringify(msg(`${marker}-own`)) });
    const ownMsgs = await readMcpMessages(own);
    assert.equal(own.status, 200, `Origin: ${stack.proxy.url} → ${own.status} ${JSON.stringify(ownMsgs)}`);
    assert.ok(ownMsgs.find((m) => m.result?.serverInfo), `initialize with the proxy's own Origin: ${JSON.stringify(ownMsgs)}`);
    const seen = (await stack.upstream.requests()).filter((r) => r.body?.includes(marker)).map((r) => JSON.parse(r.body).params.clientInfo.name);
    assert.deepEqual(seen, [`${marker}-own`], 'only the request with the proxy origin reached the upstream');
  });

  // -------------------------------------------------------------------------
  // Legacy HTTP+SSE: server-everything in `sse` mode

  test('legacy SSE: server-everything without the proxy lists the tools the scopes name', async () => {
    const transport = new SSEClientTransport(new URL(everything.sseUrl));
    const client = newClient('direct');
    await client.connect(transport);
    try {
      everythingTools = (await client.listTools()).tools.map((x) => x.name);
    } finally {
      await client.close();
    }
    for (const name of ['echo', 'get-sum', 'get-tiny-image', 'get-env']) {
      assert.ok(everythingTools.includes(name), `server-everything lists ${name}: ${everythingTools}`);
    }
  });

  let legacyA, legacyB;

  test('legacy SSE: connect with login + consent; tools/list filtered; allowed call; a tool in no scope refused on the stream', async () => {
    assert.ok(everythingTools, 'the direct listing failed');
    const transport1 = new SSEClientTransport(new URL(`${stack.proxy.url}${LEGACY_PATH}`), { authProvider: legacyProvider });
    const client1 = track(newClient(), transport1);
    await assert.rejects(client1.connect(transport1), UnauthorizedError, 'the first connect needs authorization');
    const authUrl = legacyProvider.log.authorizationUrls[0];
    assert.ok(authUrl, 'redirectToAuthorization was called');
    assert.equal(authUrl.searchParams.get('resource'), `${stack.proxy.url}${LEGACY_PATH}`);
    assert.equal(authUrl.searchParams.get('scope'), 'everything:basic');
    await finishBrowserAuthorization(legacyProvider, transport1);
    await client1.close();
    assert.equal(legacyProvider.tokens().scope, 'everything:basic');

    legacyA = await connectLegacy('legacy-a');
    assert.ok(
      legacyA.transport._endpoint?.pathname === `${LEGACY_PATH}/message` && legacyA.transport._endpoint.origin === stack.proxy.url,
      `the endpoint the client posts to is the proxy's: ${legacyA.transport._endpoint}`,
    );
    assert.ok(!legacyA.transport._endpoint.search.includes('sessionId'), `the upstream's session id is not shown: ${legacyA.transport._endpoint}`);
    const { tools } = await legacyA.client.listTools();
    assert.deepEqual(sorted(tools.map((x) => x.name)), ['echo', 'get-sum'], `filtered from ${everythingTools}`);

    const echo = await legacyA.client.callTool({ name: 'echo', arguments: { message: 'hello legacy' } });
    assert.match(textOf(echo), /hello legacy/);
    const sum = await legacyA.client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } });
    assert.match(textOf(sum), /5/, `get-sum: ${JSON.stringify(sum)}`);

    const postsBefore = everything.stderr().split('Client Message from').length;
    const { error } = await settle(legacyA.client.callTool({ name: 'get-env', arguments: {} }));
    assert.ok(error instanceof McpError, `get-env: expected an McpError, got ${error?.stack ?? JSON.stringify(error)}`);
    assert.equal(error.code, -32602, error.message);
    assert.match(error.message, /get-env/);
    // One more allowed call, so that a forwarded get-env would have been logged by now.
    await legacyA.client.callTool({ name: 'echo', arguments: { message: 'after get-env' } });
    // Its log reaches us through a pipe, a little after the answers: wait for the echo's line, then for stragglers.
    const posts = () => everything.stderr().split('Client Message from').length;
    await waitFor("server-everything's log line for the echo POST", () => posts() >= postsBefore + 1, { timeout: 5_000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(posts(), postsBefore + 1, 'server-everything got the echo POST but not the get-env one');
    assertAudited({ tool: 'get-env', route: 'legacy', client_id: legacyProvider.clientInformation().client_id });
    checkLogs();
  });

  test('legacy SSE: a client trying Streamable HTTP first gets a 4xx there and falls back to SSEClientTransport', async (t) => {
    assert.ok(legacyA, 'the legacy connect test failed');
    // The SDK's Client has no built-in fallback; the spec's backwards-compatibility
    // procedure (and the SDK's example clients) POST initialize first and, on a
    // 4xx, open the legacy GET stream on the same URL.
    const url = new URL(`${stack.proxy.url}${LEGACY_PATH}`);
    const log = [];
    const streamable = new StreamableHTTPClientTransport(url, { authProvider: legacyProvider, fetch: recordingFetch(log) });
    const c1 = track(newClient('fallback-try'), streamable);
    const { error } = await settle(c1.connect(streamable));
    await c1.close().catch(() => {});
    assert.ok(error, 'Streamable HTTP on a legacy route must fail');
    const post = log.find((r) => r.method === 'POST');
    assert.ok(post && post.status >= 400 && post.status < 500 && post.status !== 401 && post.status !== 403, `a 4xx other than 401/403 for the POST: ${JSON.stringify(log)} (${error.message})`);
    t.diagnostic(`Streamable HTTP POST on the legacy route: HTTP ${post.status}; the SDK's error: ${error.message}`);
    assert.equal(legacyProvider.log.authorizationUrls.length, 1, 'no new authorization for the fallback');
    const fallback = await connectLegacy('fallback');
    const echo = await fallback.client.callTool({ name: 'echo', arguments: { message: 'after fallback' } });
    assert.match(textOf(echo), /after fallback/);
    await fallback.client.close();
  });

  test('legacy SSE: a tool in an ungranted scope gets 403 insufficient_scope on the POST (SSEClientTransport does not step up)', async () => {
    assert.ok(legacyA, 'the legacy connect test failed');
    const { error } = await settle(legacyA.client.callTool({ name: 'get-tiny-image', arguments: {} }));
    assert.ok(error, 'get-tiny-image must be refused');
    assert.match(String(error.message), /HTTP 403/, `SSEClientTransport's error: ${error.stack ?? error}`);
    assert.match(String(error.message), /insufficient_scope/);
    assert.equal(legacyProvider.log.authorizationUrls.length, 1, 'SSEClientTransport does not re-authorise on 403');
    assertAudited({ tool: 'get-tiny-image', route: 'legacy', client_id: legacyProvider.clientInformation().client_id, missing: 'everything:media' });
    // The session is still usable.
    const echo = await legacyA.client.callTool({ name: 'echo', arguments: { message: 'still here' } });
    assert.match(textOf(echo), /still here/);
  });

  test('legacy SSE: two sessions at once each get their own answers', async () => {
    assert.ok(legacyA, 'the legacy connect test failed');
    legacyB = await connectLegacy('legacy-b');
    assert.notEqual(legacyA.transport._endpoint.href, legacyB.transport._endpoint.href, 'two sessions, two endpoints');
    const seen = { A: [], B: [] };
    for (const [k, c] of [['A', legacyA], ['B', legacyB]]) {
      const orig = c.transport.onmessage;
      c.transport.onmessage = (m) => {
        seen[k].push(m);
        orig?.(m);
      };
    }
    const calls = [];
    for (let i = 0; i < 6; i++) {
      for (const [k, c] of [['A', legacyA], ['B', legacyB]]) {
        const message = `from-${k}-${i}`;
        calls.push(c.client.callTool({ name: 'echo', arguments: { message } }).then((r) => ({ k, message, text: textOf(r) })));
      }
    }
    const results = await Promise.all(calls);
    for (const r of results) assert.match(r.text, new RegExp(`\\b${r.message}\\b`), `session ${r.k} got ${JSON.stringify(r.text)} for ${r.message}`);
    assert.ok(!JSON.stringify(seen.A).includes('from-B-'), `session A saw B's traffic: ${JSON.stringify(seen.A)}`);
    assert.ok(!JSON.stringify(seen.B).includes('from-A-'), `session B saw A's traffic: ${JSON.stringify(seen.B)}`);

    // A refusal injected into A's stream does not show up on B's.
    const bBefore = seen.B.length;
    const { error } = await settle(legacyA.client.callTool({ name: 'get-env', arguments: {} }));
    assert.equal(error?.code, -32602);
    await legacyB.client.callTool({ name: 'echo', arguments: { message: 'b-after' } });
    const bErrors = seen.B.slice(bBefore).filter((m) => m.error);
    assert.deepEqual(bErrors, [], 'session B got no error message');

    // The message endpoint is protected like the route.
    const endpoint = legacyA.transport._endpoint.href;
    const post = (url, token) =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ jsonrpc: '2.0', id: 'probe', method: 'ping' }),
      });
    const anon = await post(endpoint);
    await anon.arrayBuffer();
    assert.equal(anon.status, 401, 'no token on the message endpoint');
    const otherRoute = await post(endpoint, provider.tokens()?.access_token);
    await otherRoute.arrayBuffer();
    assert.equal(otherRoute.status, 401, "a token for another route (audience) on the legacy message endpoint");
    const unknown = await post(`${stack.proxy.url}${LEGACY_PATH}/message?session=nope`, legacyProvider.tokens().access_token);
    await unknown.arrayBuffer();
    assert.equal(unknown.status, 404, 'an unknown session');
    checkLogs();
  });

  test('legacy SSE: keep-alive comments on an idle stream; the session ends with the stream', async (t) => {
    assert.ok(legacyProvider.tokens(), 'the legacy connect test failed');
    const token = legacyProvider.tokens().access_token;
    const disconnectsBefore = everything.stderr().split('Client Disconnected').length;
    const ac = new AbortController();
    const res = await fetch(`${stack.proxy.url}${LEGACY_PATH}`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` }, signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const until = Date.now() + KEEPALIVE_S * 1000 * 2.6;
    while (Date.now() < until) {
      const chunk = await Promise.race([reader.read(), new Promise((r) => setTimeout(() => r(null), until - Date.now()))]);
      if (chunk === null) break;
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
    const endpoint = /event: ?endpoint\r?\ndata: ?(\S+)/.exec(text)?.[1];
    assert.ok(endpoint?.startsWith(`${LEGACY_PATH}/message?session=`), `the endpoint event is rewritten: ${JSON.stringify(text)}`);
    const comments = text.split(/\r?\n/).filter((l) => l.startsWith(':'));
    t.diagnostic(`${comments.length} keep-alive comment(s) in ${KEEPALIVE_S * 2.6} s: ${JSON.stringify(comments)}`);
    assert.ok(comments.length >= 2, `keep-alive comments every ${KEEPALIVE_S}s on an idle stream, got ${comments.length}: ${JSON.stringify(text)}`);

    // A ping that races the end of the session can reach server-everything after it has
    // dropped the session, and server-everything never answers a POST for an unknown
    // session (dist/transports/sse.js); each ping gets 2 s, then the next one is sent.
    const ping = () =>
      fetch(`${stack.proxy.url}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
        signal: AbortSignal.timeout(2_000),
      }).catch((e) => ({ status: `no answer (${e.name})`, arrayBuffer: async () => null }));
    const live = await ping();
    await live.arrayBuffer();
    assert.ok(live.status >= 200 && live.status < 300, `a POST to the open session: ${live.status}`);
    ac.abort();
    await waitFor('the session to end with its stream (404 on its endpoint)', async () => {
      const r = await ping();
      await r.arrayBuffer();
      return r.status === 404;
    }, { timeout: 10_000, interval: 100 });
    await waitFor('server-everything to see its stream closed', () => everything.stderr().split('Client Disconnected').length > disconnectsBefore, {
      timeout: 10_000,
    });
    checkLogs();
  });
});
