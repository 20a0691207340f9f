// The official TypeScript MCP SDK client through two proxy instances that
// share one Redis (`state.redis`, issue 12), behind a round-robin TCP load
// balancer written here: each new connection goes to the next instance, so
// registration, the browser's login and consent, the code exchange, the MCP
// session and the refresh land on either instance. The flow must work as
// with one instance, and both instances must have served it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';

import { launchBrowser, startCatcher } from './lib/browser.mjs';
import { assertNoSecrets, freePort, hashPassword, initializeMessage, mcpPost, randomToken, startProxy, startUpstream, waitFor } from './lib/harness.mjs';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from './lib/deps.mjs';
import { BrowserOAuthProvider } from './lib/oauth-provider.mjs';

const ACCESS_TTL_S = 3;

/** A redis-server of this test's own on a free loopback port, nothing saved. */
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  child.once('error', (e) => console.error(`redis-server: ${e.message} (apt-get install redis-server)`));
  const pong = () =>
    new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
      s.once('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.once('error', () => resolve(false));
    });
  await waitFor('redis-server to answer PING', pong, { timeout: 10_000 });
  return { url: `redis://127.0.0.1:${port}/0`, stop: () => child.kill('SIGKILL') };
}

/** A TCP load balancer on `port`: each accepted connection is piped to the next backend port in turn. */
async function startBalancer(port, backends) {
  const served = backends.map(() => 0);
  let next = 0;
  const sockets = new Set();
  const server = net.createServer((client) => {
    const i = next++ % backends.length;
    served[i]++;
    const upstream = net.connect(backends[i], '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}

function textOf(result) {
  return (result.content ?? []).map((c) => c.text ?? '').join('');
}

describe('official TypeScript SDK client through two instances on one Redis', { timeout: 180_000 }, () => {
  let redis, upstream, proxies, balancer, catcher, browser, provider;
  const password = `pw-${randomToken(12)}`;
  const upstreamToken = `upstream-${randomToken()}`;
  const codes = [];

  before(async () => {
    redis = await startRedis();
    upstream = await startUpstream({ token: upstreamToken });
    // The balancer's port is known before the instances start: it is their public URL.
    const publicPort = await freePort();
    const options = {
      upstreamUrl: upstream.mcpUrl,
      upstreamToken,
      users: [{ name: 'alice', passwordHash: hashPassword(password), groups: ['staff'] }],
      tokens: { access_ttl: `${ACCESS_TTL_S}s` },
      publicUrl: `http://127.0.0.1:${publicPort}`,
      redisUrl: redis.url,
    };
    proxies = [await startProxy(options), await startProxy(options)];
    balancer = await startBalancer(publicPort, proxies.map((p) => p.port));
    catcher = await startCatcher();
    browser = await launchBrowser();
    provider = new BrowserOAuthProvider({ browser, catcher, username: 'alice', password });
  });

  after(async () => {
    await browser?.close();
    await catcher?.close();
    await balancer?.close();
    for (const p of proxies ?? []) await p.stop();
    await upstream?.stop();
    redis?.stop();
  });

  test('connect, authorize in the browser, call tools, refresh: across both instances', async () => {
    const mcpUrl = `${balancer.url}/notes/mcp`;
    const transport1 = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    const client1 = new Client({ name: 'interop-shared-store', version: '0.0.0' });
    await assert.rejects(client1.connect(transport1), UnauthorizedError, 'the first connect needs authorization');
    const { query } = await provider.pendingAuthorization;
    codes.push(query.code);
    assert.equal(typeof query.code, 'string', `callback query: ${JSON.stringify(query)}`);
    await transport1.finishAuth(query.code);
    const first = provider.tokens();

    const transport2 = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    const client2 = new Client({ name: 'interop-shared-store', version: '0.0.0' });
    await client2.connect(transport2);
    const { tools } = await client2.listTools();
    assert.ok(tools.some((t) => t.name === 'echo'), `listTools: ${tools.map((t) => t.name)}`);
    const hi = await client2.callTool({ name: 'echo', arguments: { message: 'hi' } });
    assert.match(textOf(hi), /hi/);

    // The access token works on each instance directly.
    for (const p of proxies) {
      const res = await mcpPost(`${p.url}/notes/mcp`, initializeMessage('direct'), { token: first.access_token });
      await res.arrayBuffer();
      assert.equal(res.status, 200, `instance ${p.url}`);
    }

    await waitFor(
      'the access token to expire',
      async () => {
        const res = await mcpPost(mcpUrl, initializeMessage('expiry-probe'), { token: first.access_token });
        await res.arrayBuffer();
        return res.status === 401;
      },
      { timeout: (ACCESS_TTL_S + 10) * 1000, interval: 250 },
    );
    const later = await client2.callTool({ name: 'echo', arguments: { message: 'hi after refresh' } });
    assert.match(textOf(later), /hi after refresh/);
    assert.notEqual(provider.tokens().refresh_token, first.refresh_token, 'the refresh token rotated');
    assert.equal(provider.log.registrations.length, 1, 'one registration');
    await client2.close();

    for (const [i, p] of proxies.entries()) {
      const lines = p.logs().split('\n').filter((l) => l.includes('INFO access: method='));
      assert.ok(lines.length > 0, `instance ${i} served requests (balancer connections: ${balancer.served})`);
    }
    for (const p of proxies) {
      const tokens = provider.log.savedTokens;
      assertNoSecrets(p.logs(), {
        code: codes,
        access_token: tokens.map((t) => t.access_token),
        refresh_token: tokens.map((t) => t.refresh_token),
        password,
        upstream_token: upstreamToken,
      });
    }
  });
});
