// Per-user upstream OAuth (issue 14, part 3), end to end: an MCP server built
// with the official TypeScript SDK behind `requireBearerAuth`, whose
// authorization server (the SDK's `mcpAuthRouter`, tests/node/oauth-upstream.mjs)
// the test starts; the proxy in front with `upstream_auth: {oauth: {}}`
// (everything discovered: RFC 9728 → RFC 8414 → dynamic registration), and
// chromium connecting each user's account through /oauth/connect/<route>.
//
// First call → a JSON-RPC error naming the connect URL → the connect flow in
// the browser (sign in at the proxy first) → the tool call arrives upstream
// with the user's own token; two users get different upstream tokens; the
// upstream token nearing expiry is refreshed without the user; a refused
// refresh (and a token the upstream no longer takes) asks to connect again;
// revoking the grant at the proxy, or a reused refresh token, deletes the
// user's upstream tokens. A second suite configures the authorization server
// and a client registered beforehand (as for GitHub): no dynamic registration.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startOAuthUpstream } from '../node/oauth-upstream.mjs';
import { launchBrowser, loginAndConsent, pageHeading, startCatcher, submitLogin } from './lib/browser.mjs';
import {
  assertNoSecrets,
  discover,
  freePort,
  hashPassword,
  initializeMessage,
  mcpPost,
  pkcePair,
  randomToken,
  readMcpMessages,
  registerClient,
  startProxy,
  startUpstream,
  tokenRequest,
  waitFor,
} from './lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** The upstream's access tokens live 63 s; the proxy refreshes a minute ahead: after ~3 s. */
const ACCESS_TTL = 63;

/**
 * The suite, with everything discovered and registered dynamically, or (`configured`)
 * with `authorization_server`, `client_id` and `client_secret` in the config, as
 * for GitHub (a client registered beforehand; no dynamic registration by the proxy).
 */
function suite(title, { configured }) {
  describe(title, () => {
    let up, notes, proxy, catcher, browser, metadata, client;
    const users = { alice: `pw-${randomToken(8)}`, bob: `pw-${randomToken(8)}` };
    const ghUrl = () => `${proxy.url}/gh/mcp`;
    const connectUrl = () => `${proxy.url}/oauth/connect/gh`;

    before(async () => {
      up = await startOAuthUpstream({ accessTtl: ACCESS_TTL });
      const notesToken = `upstream-${randomToken()}`;
      notes = await startUpstream({ token: notesToken });
      let oauth = ['      oauth: {}'];
      let port;
      if (configured) {
        port = await freePort();
        const r = await fetch(`${up.origin}/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            client_name: 'registered by hand',
            redirect_uris: [`http://127.0.0.1:${port}/oauth/connect/gh/callback`],
            token_endpoint_auth_method: 'client_secret_post',
          }),
        });
        const registered = await r.json();
        assert.equal(r.status, 201, JSON.stringify(registered));
        oauth = [
          '      oauth:',
          `        authorization_server: "${up.origin}"`,
          `        client_id: "${registered.client_id}"`,
          `        client_secret: "${registered.client_secret}"`,
          '        scopes: [mcp]',
        ];
      }
      proxy = await startProxy({
        port,
        upstreamUrl: notes.mcpUrl,
        upstreamToken: notesToken,
        scopes: null,
        tokens: { refresh_grace: '1s' },
        users: Object.entries(users).map(([name, pw]) => ({ name, passwordHash: hashPassword(pw), groups: [] })),
        extra: [
          '  - name: gh',
          '    path: /gh/mcp',
          `    upstream: "${up.mcpUrl}"`,
          '    upstream_auth:',
          ...oauth,
        ].join('\n'),
      });
      catcher = await startCatcher();
      browser = await launchBrowser();
      metadata = await discover(proxy.url);
      client = await registerClient(metadata, {
        client_name: 'Upstream OAuth Test Client',
        redirect_uris: [catcher.redirectUri],
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      });
    });

    after(async () => {
      await browser?.close();
      await catcher?.close();
      await proxy?.stop();
      await notes?.stop();
      await up?.stop();
    });

    /** A browser context signed in at the proxy as `name`, and a proxy access token for /gh/mcp. */
    async function signIn(name, { beforeConsent } = {}) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const { verifier, challenge } = pkcePair();
      const u = new URL(metadata.authorization_endpoint);
      u.search = new URLSearchParams({
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: catcher.redirectUri,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: randomToken(6),
        resource: ghUrl(),
      }).toString();
      const from = catcher.calls.length;
      await page.goto(u.toString());
      await loginAndConsent(page, { username: name, password: users[name], beforeConsent });
      const cb = await catcher.next({ from });
      const r = await tokenRequest(metadata, {
        grant_type: 'authorization_code',
        code: cb.query.code,
        redirect_uri: catcher.redirectUri,
        code_verifier: verifier,
        client_id: client.client_id,
        resource: ghUrl(),
      });
      assert.equal(r.res.status, 200, JSON.stringify(r.body));
      return { context, page, token: r.body.access_token, refreshToken: r.body.refresh_token };
    }

    /** tools/call whoami on /gh/mcp: `{ status, message }` (the JSON-RPC answer). */
    async function whoami(token, id = 7) {
      const res = await mcpPost(ghUrl(), { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'whoami', arguments: {} } }, { token });
      const [message] = await readMcpMessages(res);
      return { status: res.status, message };
    }

    function assertAskedToConnect({ status, message }, id = 7) {
      assert.equal(status, 200, JSON.stringify(message));
      assert.equal(message.id, id);
      assert.equal(message.error?.code, -32042, JSON.stringify(message));
      assert.ok(message.error.message.includes(connectUrl()), message.error.message);
      const [elicitation] = message.error.data.elicitations;
      assert.equal(elicitation.mode, 'url');
      assert.equal(elicitation.url, connectUrl());
    }

    /** The connect flow in the signed-in browser: ends on the "Connected" page. */
    async function connect(page) {
      await page.goto(connectUrl());
      assert.equal((await pageHeading(page)).h1, 'Connected', await page.content());
    }

    const sessions = {};

    test('a user without a connected account is told where to connect it', async () => {
      // The consent page offers to connect the account (not connected yet).
      let offered;
      sessions.alice = await signIn('alice', {
        beforeConsent: async (page) => {
          offered = await page.getByRole('link', { name: 'connect it' }).getAttribute('href');
        },
      });
      assert.equal(offered, connectUrl());
      assertAskedToConnect(await whoami(sessions.alice.token));
      // initialize too (the upstream takes no request without the user's token).
      const res = await mcpPost(ghUrl(), initializeMessage(3), { token: sessions.alice.token });
      const [m] = await readMcpMessages(res);
      assert.equal(m.error?.code, -32042);
      assert.equal(up.state.seen.length, 0, 'nothing reached the upstream');
    });

    test('the connect page sends a browser that is not signed in through the login page first', async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(connectUrl());
      await submitLogin(page, { username: 'bob', password: users.bob });
      await waitFor('the Connected page', async () => (await pageHeading(page)).h1 === 'Connected');
      await context.close();
      // Bob is connected (as the next upstream user) though he never called a tool.
      assert.equal(up.state.registrations, 1, configured ? 'only the registration by hand' : 'the proxy registered itself once (DCR)');
    });

    test('after connecting, tool calls carry the user\'s own upstream token; two users get different ones', async () => {
      await connect(sessions.alice.page);
      const a = await whoami(sessions.alice.token);
      assert.equal(a.status, 200);
      const aliceUp = JSON.parse(a.message.result.content[0].text);
      sessions.bob = await signIn('bob');
      const b = await whoami(sessions.bob.token);
      const bobUp = JSON.parse(b.message.result.content[0].text);
      assert.notEqual(aliceUp.token, bobUp.token);
      assert.notEqual(aliceUp.user, bobUp.user);
      assert.ok(up.state.issued.some((i) => i.token === aliceUp.token && i.user === aliceUp.user));
      // The proxy's own token never went upstream.
      assert.ok(!up.state.seen.includes(sessions.alice.token));
      sessions.aliceFirstUpstreamToken = aliceUp.token;
    });

    if (configured) return;

    test('an upstream token about to expire is refreshed without the user', async () => {
      const before = up.state.refreshes;
      await sleep((ACCESS_TTL - 60 + 1) * 1000);
      const a = await whoami(sessions.alice.token);
      assert.equal(a.status, 200, JSON.stringify(a.message));
      const now = JSON.parse(a.message.result.content[0].text);
      assert.notEqual(now.token, sessions.aliceFirstUpstreamToken, 'a new upstream token');
      assert.ok(up.state.refreshes > before, 'refreshed at the upstream');
      // A second call uses the cached token: no second refresh.
      const refreshes = up.state.refreshes;
      const again = JSON.parse((await whoami(sessions.alice.token)).message.result.content[0].text);
      assert.equal(again.token, now.token);
      assert.equal(up.state.refreshes, refreshes);
    });

    test('a refused refresh asks the user to connect again, and connecting again works', async () => {
      up.state.refuseRefresh = true;
      await sleep((ACCESS_TTL - 60 + 1) * 1000);
      assertAskedToConnect(await whoami(sessions.alice.token, 'x'), 'x');
      up.state.refuseRefresh = false;
      await connect(sessions.alice.page);
      const a = await whoami(sessions.alice.token);
      assert.equal(a.status, 200, JSON.stringify(a.message));
    });

    test('a token the upstream no longer takes asks the user to connect again', async () => {
      assert.equal((await whoami(sessions.bob.token)).status, 200); // refreshed now: fresh for a few seconds
      up.expireAccessTokens();
      assertAskedToConnect(await whoami(sessions.bob.token));
      // Bob's tokens were forgotten: still asked (no retry with the refused token).
      assertAskedToConnect(await whoami(sessions.bob.token));
    });

    test("revoking the user's grant at the proxy deletes their upstream tokens", async () => {
      assert.equal((await whoami(sessions.alice.token)).status, 200);
      const r = await fetch(metadata.revocation_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: sessions.alice.refreshToken, client_id: client.client_id }),
      });
      assert.equal(r.status, 200);
      // A new grant (same browser session): the upstream account must be connected again.
      const again = await signIn('alice');
      assertAskedToConnect(await whoami(again.token));
      await again.context.close();
    });

    test('a refresh token reused after the grace window ends the grant and its upstream tokens', async () => {
      await connect(sessions.bob.page);
      assert.equal((await whoami(sessions.bob.token)).status, 200);
      const rotated = await tokenRequest(metadata, {
        grant_type: 'refresh_token',
        refresh_token: sessions.bob.refreshToken,
        client_id: client.client_id,
        resource: ghUrl(),
      });
      assert.equal(rotated.res.status, 200, JSON.stringify(rotated.body));
      await sleep(2_100);
      const reused = await tokenRequest(metadata, {
        grant_type: 'refresh_token',
        refresh_token: sessions.bob.refreshToken,
        client_id: client.client_id,
        resource: ghUrl(),
      });
      assert.equal(reused.body.error, 'invalid_grant');
      const again = await signIn('bob');
      assertAskedToConnect(await whoami(again.token));
      await again.context.close();
    });

    test('no upstream token reaches the proxy log', () => {
      assertNoSecrets(proxy.logs(), {
        upstream: up.state.issued.map((i) => i.token),
      });
    });
  });
}

suite('per-user upstream OAuth (discovered, registered dynamically)', { configured: false });
suite('per-user upstream OAuth (authorization server and client configured)', { configured: true });
