// stdio MCP servers behind the proxy (issue 15), with the official clients:
//
// - @modelcontextprotocol/server-everything started by the proxy in `stdio`
//   mode, used through the TypeScript SDK client (a 2025-06-18/2025-11-25
//   client) and the Python SDK client (python/stdio_flow.py: a dual-era
//   client whose server/discover probe the proxy answers, so it stays 2026-07-28):
//   tools, prompts, resources, progress, a sampling request from the server;
// - tests/node/stdio-server.mjs (a tiny stdio server written with the TS SDK's
//   StdioServerTransport) with `per: user`: alice and bob connected at once
//   never see each other's process, alice's two sessions share hers.
//
// Tokens come from the proxy's own OAuth flow (scripted login and consent).

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { discover, obtainToken, registerClient } from '../conformance/lib/oauth.mjs';
import { Client, StreamableHTTPClientTransport, resolveFixture } from './lib/deps.mjs';
import { EVERYTHING_JS, NODE_DIR, ROOT, assertNoSecrets, hashPassword, randomToken, requirePythonSdk, runPythonJson, startProxy } from './lib/harness.mjs';

const { CreateMessageRequestSchema } = await import(resolveFixture('@modelcontextprotocol/sdk', './types.js'));

const STDIO_SERVER = path.join(NODE_DIR, 'stdio-server.mjs');
const STDIO_FLOW = path.join(ROOT, 'tests/interop/python/stdio_flow.py');

function textOf(result) {
  return (result.content ?? []).map((c) => c.text ?? '').join('');
}

describe('stdio MCP servers behind the proxy, through the official SDK clients', { timeout: 240_000 }, () => {
  let proxy, metadata, password;
  const everythingSecret = `everything-${randomToken()}`;
  const issuedTokens = [];

  async function tokenFor(user, routePath) {
    const redirectUri = 'http://127.0.0.1:9/callback';
    const client = await registerClient(metadata, { redirectUris: [redirectUri], clientName: `stdio interop (${user})` });
    const t = await obtainToken({ metadata, client, redirectUri, resource: `${proxy.url}${routePath}`, username: user, password });
    issuedTokens.push(t.access_token);
    return t.access_token;
  }

  async function connect(token, routePath, { capabilities = {} } = {}) {
    const transport = new StreamableHTTPClientTransport(new URL(`${proxy.url}${routePath}`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: 'mcp-oauth-proxy-stdio-interop', version: '0.0.0' }, { capabilities });
    return { client, transport };
  }

  before(async () => {
    password = `pw-${randomToken(12)}`;
    const passwordHash = hashPassword(password);
    proxy = await startProxy({
      upstreamUrl: 'http://127.0.0.1:9/mcp',
      users: [
        { name: 'alice', passwordHash },
        { name: 'bob', passwordHash },
      ],
      routes: [
        {
          name: 'everything',
          path: '/everything/mcp',
          upstream: { command: [process.execPath, EVERYTHING_JS, 'stdio'], env: { EVERYTHING_SECRET: everythingSecret } },
        },
        { name: 'pids', path: '/pids/mcp', upstream: { command: [process.execPath, STDIO_SERVER], per: 'user' } },
      ],
    });
    metadata = await discover(proxy.url);
  });

  after(async () => {
    await proxy?.stop();
  });

  test('TypeScript SDK: tools, prompts, resources, progress and sampling with server-everything over stdio', async () => {
    const token = await tokenFor('alice', '/everything/mcp');
    const { client, transport } = await connect(token, '/everything/mcp', { capabilities: { sampling: {} } });
    const samplingRequests = [];
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
      samplingRequests.push(req);
      return { role: 'assistant', model: 'interop', content: { type: 'text', text: 'sampled by the TypeScript SDK' } };
    });
    await client.connect(transport);
    try {
      assert.equal(client.getServerVersion()?.name, 'mcp-servers/everything');
      assert.match(transport.sessionId ?? '', /^[A-Za-z0-9_-]{20,}$/, 'the proxy minted the session id');

      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      for (const n of ['echo', 'get-sum', 'get-env', 'trigger-long-running-operation', 'trigger-sampling-request']) {
        assert.ok(names.includes(n), `${n} in ${names}`);
      }
      assert.match(textOf(await client.callTool({ name: 'echo', arguments: { message: 'hi over stdio' } })), /hi over stdio/);
      assert.match(textOf(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } })), /42/);

      const { prompts } = await client.listPrompts();
      assert.ok(prompts.some((p) => p.name === 'simple-prompt'), JSON.stringify(prompts));
      const prompt = await client.getPrompt({ name: 'simple-prompt' });
      assert.ok(prompt.messages.length > 0);

      const { resources } = await client.listResources();
      assert.ok(resources.length > 0);
      const read = await client.readResource({ uri: resources[0].uri });
      assert.equal(read.contents[0].uri, resources[0].uri);

      const progress = [];
      const long = await client.callTool(
        { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } },
        undefined,
        { onprogress: (p) => progress.push(p) },
      );
      assert.match(textOf(long), /completed/);
      assert.deepEqual(progress.map((p) => p.progress), [1, 2, 3], 'every progress notification, in order');

      const sampled = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hello', maxTokens: 5 } });
      assert.equal(samplingRequests.length, 1, 'the server asked the client once');
      assert.match(textOf(sampled), /sampled by the TypeScript SDK/);

      // The child's environment: what the route set, PATH, HOME and LANG; nothing of the proxy's.
      const env = JSON.parse(textOf(await client.callTool({ name: 'get-env', arguments: {} })));
      assert.equal(env.EVERYTHING_SECRET, everythingSecret);
      for (const k of Object.keys(env)) assert.ok(['EVERYTHING_SECRET', 'PATH', 'HOME', 'LANG'].includes(k), `unexpected ${k} in the child's environment`);
      assert.equal(env.MCP_OAUTH_PROXY_LOG, undefined);

      await transport.terminateSession();
      assert.equal(transport.sessionId, undefined);
    } finally {
      await client.close();
    }
    assertNoSecrets(proxy.logs(), { env: everythingSecret, access_token: issuedTokens, password });
  });

  test('two users at once never see each other\'s process; a user\'s sessions share one (per: user)', async () => {
    const [alice, bob] = await Promise.all([tokenFor('alice', '/pids/mcp'), tokenFor('bob', '/pids/mcp')]);
    const conns = await Promise.all([connect(alice, '/pids/mcp'), connect(alice, '/pids/mcp'), connect(bob, '/pids/mcp')]);
    await Promise.all(conns.map(({ client, transport }) => client.connect(transport)));
    try {
      const pids = await Promise.all(
        conns.map(async ({ client }) => JSON.parse(textOf(await client.callTool({ name: 'pid', arguments: {} }))).pid),
      );
      const [alice1, alice2, bob1] = pids;
      assert.equal(alice1, alice2, 'alice\'s two sessions share her process');
      assert.notEqual(alice1, bob1, 'bob has a process of his own');
      // Bob cannot reach alice's session, even with its id.
      const stolen = await fetch(`${proxy.url}/pids/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${bob}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': conns[0].transport.sessionId,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pid', arguments: {} } }),
      });
      assert.equal(stolen.status, 404);
      await stolen.arrayBuffer();
    } finally {
      await Promise.all(conns.map(({ client }) => client.close()));
    }
  });

  /** Runs python/stdio_flow.py in `mode` against the server-everything route. */
  async function pythonFlow(mode) {
    requirePythonSdk();
    const token = await tokenFor('alice', '/everything/mcp');
    const { code, out, stderr } = await runPythonJson(STDIO_FLOW, ['--url', `${proxy.url}/everything/mcp`, '--mode', mode], {
      env: { STDIO_FLOW_TOKEN: token },
    });
    assert.ok(code === 0 && out.ok, `stdio_flow.py failed after "${out.step}": ${out.error}\n${stderr.slice(-3000)}`);
    assert.equal(out.server_name, 'mcp-servers/everything');
    assert.ok(out.tools.includes('echo') && out.tools.includes('trigger-sampling-request'), out.tools.join(' '));
    assert.match(out.echo, /hello from Python/);
    assert.ok(out.prompts.includes('simple-prompt') && out.prompt_messages > 0);
    assert.ok(out.resources > 0);
    assert.equal(out.resource_read.got, out.resource_read.asked);
    assert.deepEqual(out.progress, [1, 2, 3]);
    assert.equal(out.sampling_requests, 1);
    assert.match(out.sampling_result, /sampled by the Python SDK/);
    return out;
  }

  test('Python SDK (mode auto: 2026-07-28, bridged by the proxy): tools, prompts, resources, progress and sampling', async (t) => {
    const out = await pythonFlow('auto');
    t.diagnostic(`negotiated ${out.protocol_version}; seconds after start: ${JSON.stringify(out.timings)}`);
    // The proxy answers the probe for server-everything (it bridges 2026-07-28
    // clients to a child that speaks only initialize): the SDK stays modern,
    // and sampling travels as an input_required answer and a retry.
    const probe = out.http.find((e) => e.jsonrpc_method === 'server/discover');
    assert.equal(probe?.status, 200, JSON.stringify(out.http));
    assert.equal(out.protocol_version, '2026-07-28');
    assert.ok(!out.http.some((e) => e.jsonrpc_method === 'initialize' || e.method !== 'POST'), JSON.stringify(out.http));
  });

  test('Python SDK (mode legacy: initialize and a session): the same flow', async (t) => {
    const out = await pythonFlow('legacy');
    t.diagnostic(`negotiated ${out.protocol_version}`);
    assert.notEqual(out.protocol_version, '2026-07-28');
    assert.ok(out.http.some((e) => e.jsonrpc_method === 'initialize' && e.status === 200), JSON.stringify(out.http));
    assert.ok(!out.http.some((e) => e.jsonrpc_method === 'server/discover'), JSON.stringify(out.http));
  });
});
