// stdio MCP servers behind the proxy, used by 2026-07-28 ("modern") clients:
// POSTs without a session, each carrying MCP-Protocol-Version, Mcp-Method,
// Mcp-Name and the `_meta` envelope; no initialize.
//
// - @modelcontextprotocol/server-everything in stdio mode (a 2025 server: the
//   proxy bridges, i.e. initializes it itself, answers server/discover from
//   that, and turns the child's own requests into MRTR input_required results),
//   through the Python SDK client pinned to 2026-07-28
//   (python/stdio_modern.py --server everything): discover, tools, progress,
//   a prompt, a resource, and a sampling round trip;
// - python/modern_stdio_server.py (a 2026-07-28 server written with the Python
//   SDK: requests pass through unchanged, its own input_required and
//   requestState included), through the same client (--server modern);
// - plain fetch: which process a user's requests reach (alice's share one,
//   bob's never, another OAuth client's not with `per: session`, a legacy
//   initialize session never), the version checks (-32022, -32020, 405), the
//   requestState bound to its user and client, and after SIGTERM no process of
//   the proxy's is left.
//
// Tokens come from the proxy's own OAuth flow (scripted login and consent).

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { discover, obtainToken, registerClient } from '../conformance/lib/oauth.mjs';
import { Client, StreamableHTTPClientTransport } from './lib/deps.mjs';
import {
  EVERYTHING_JS,
  ROOT,
  VENV_PYTHON,
  assertNoSecrets,
  hashPassword,
  randomToken,
  readMcpMessages,
  requirePythonSdk,
  runPythonJson,
  startProxy,
} from './lib/harness.mjs';

const STDIO_MODERN = path.join(ROOT, 'tests/interop/python/stdio_modern.py');
const MODERN_SERVER = path.join(ROOT, 'tests/interop/python/modern_stdio_server.py');
const MODERN = '2026-07-28';
const SAMPLED_TEXT = 'sampled by the Python SDK over 2026-07-28'; // stdio_modern.py's sampling answer
const ELICITED_NAME = 'Ada from the Python SDK'; // stdio_modern.py's elicitation answer

function textOf(result) {
  return (result?.content ?? []).map((c) => c.text ?? '').join('');
}

/** The parent PID of `pid` from /proc (null when the process is gone). */
function ppidOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** PIDs of the processes whose environment holds `KEY=value`. */
function processesWithEnv(key, value) {
  const needle = `${key}=${value}`;
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(needle)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** `{pid: state}` of those of `pids` that still exist (a zombie, "Z", exists too). */
function stillThere(pids) {
  const left = {};
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      left[pid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    } catch {
      // gone
    }
  }
  return left;
}

describe('stdio MCP servers behind the proxy, for 2026-07-28 clients', { timeout: 300_000 }, () => {
  let proxy, metadata, password;
  const mark = `stdio-modern-${randomToken(9)}`; // in every child's environment, to find them in /proc
  const issuedTokens = [];
  let nextId = 1;

  async function tokenFor(user, routePath) {
    const redirectUri = 'http://127.0.0.1:9/callback';
    const client = await registerClient(metadata, { redirectUris: [redirectUri], clientName: `stdio modern interop (${user})` });
    const t = await obtainToken({ metadata, client, redirectUri, resource: `${proxy.url}${routePath}`, username: user, password });
    issuedTokens.push(t.access_token);
    return t.access_token;
  }

  /**
   * One modern request over plain fetch: the envelope in `_meta` (with
   * `capabilities`; `meta` adds keys or, with undefined, drops one), the
   * headers a conforming client sends (`headers` adds to them or, with null,
   * removes one). Returns the status, every message of the answer, the answer
   * to this request, and `show` (all of it, for assertion messages).
   */
  async function modernPost(routePath, token, method, params = {}, { capabilities = {}, headers = {}, meta = {} } = {}) {
    const id = nextId++;
    const body = {
      jsonrpc: '2.0',
      id,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientInfo': { name: 'stdio-modern-raw', version: '0.0.0' },
          'io.modelcontextprotocol/clientCapabilities': capabilities,
          ...meta,
        },
      },
    };
    const h = {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
    };
    if (typeof (params.name ?? params.uri) === 'string') h['mcp-name'] = params.name ?? params.uri;
    for (const [k, v] of Object.entries(headers)) {
      if (v === null) delete h[k];
      else h[k] = v;
    }
    const res = await fetch(`${proxy.url}${routePath}`, { method: 'POST', headers: h, body: JSON.stringify(body) });
    const messages = await readMcpMessages(res);
    const answer = messages.find((m) => m.id === id && ('result' in m || 'error' in m));
    const show = `${method} → HTTP ${res.status} ${res.headers.get('content-type')}: ${JSON.stringify(messages).slice(0, 1500)}`;
    return { res, status: res.status, messages, answer, show };
  }

  async function whoami(routePath, token) {
    const r = await modernPost(routePath, token, 'tools/call', { name: 'whoami', arguments: {} });
    assert.equal(r.status, 200, r.show);
    assert.ok(r.answer?.result?.structuredContent, r.show);
    return r.answer.result.structuredContent;
  }

  /** A 2025 (initialize) session through the TypeScript SDK client: its `whoami`. */
  async function legacyWhoami(routePath, token) {
    const transport = new StreamableHTTPClientTransport(new URL(`${proxy.url}${routePath}`), {
      requestInit: { headers: { authorization: `Bearer ${token}` } },
    });
    const client = new Client({ name: 'stdio-modern-legacy-interop', version: '0.0.0' }, { capabilities: {} });
    await client.connect(transport);
    try {
      assert.match(transport.sessionId ?? '', /^[A-Za-z0-9_-]{20,}$/, 'a legacy session has its id');
      return JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} })));
    } finally {
      await client.close();
    }
  }

  /** Runs stdio_modern.py; the token goes in its environment, not on its command line. */
  async function runStdioModern(server, routePath, token) {
    const { code, out, stderr } = await runPythonJson(STDIO_MODERN, ['--server', server, '--url', `${proxy.url}${routePath}`], {
      env: { STDIO_MODERN_TOKEN: token },
      timeout: 150_000,
    });
    if (code !== 0 || !out.ok) {
      const http = (out.http ?? []).map((e) => `  ${e.method} ${e.jsonrpc_method ?? ''} ${e.mcp_name ?? ''} → ${e.status} ${e.content_type ?? ''}`);
      assert.fail(`stdio_modern.py --server ${server} failed after "${out.step}": ${out.error}\nHTTP:\n${http.join('\n')}\nstderr:\n${stderr.slice(-3000)}\nproxy log:\n${proxy.logs().slice(-3000)}`);
    }
    return out;
  }

  /** What every request of a pinned 2026-07-28 client looked like on the wire. */
  function assertModernWire(http) {
    assert.ok(http.length > 0);
    for (const e of http) {
      const what = JSON.stringify(e);
      assert.equal(e.method, 'POST', `only POSTs (no GET stream, no DELETE): ${what}`);
      assert.notEqual(e.jsonrpc_method, 'initialize', `no initialize: ${what}`);
      assert.equal(e.session_id, null, `no Mcp-Session-Id sent: ${what}`);
      assert.equal(e.response_session_id, null, `the proxy minted no session: ${what}`);
      assert.equal(e.mcp_protocol_version, MODERN, what);
      assert.equal(e.meta_version, MODERN, what);
      assert.equal(e.mcp_method, e.jsonrpc_method, what);
      assert.equal(e.status, 200, what);
    }
  }

  before(async () => {
    requirePythonSdk();
    password = `pw-${randomToken(12)}`;
    const passwordHash = hashPassword(password);
    const env = { STDIO_MODERN_MARK: mark };
    proxy = await startProxy({
      upstreamUrl: 'http://127.0.0.1:9/mcp',
      users: [
        { name: 'alice', passwordHash },
        { name: 'bob', passwordHash },
      ],
      routes: [
        { name: 'everything', path: '/everything/mcp', upstream: { command: [process.execPath, EVERYTHING_JS, 'stdio'], env } },
        { name: 'modern', path: '/modern/mcp', upstream: { command: [VENV_PYTHON, MODERN_SERVER], env } },
        { name: 'modern-per-user', path: '/modern-user/mcp', upstream: { command: [VENV_PYTHON, MODERN_SERVER], env, per: 'user' } },
      ],
    });
    metadata = await discover(proxy.url);
  });

  after(async () => {
    await proxy?.stop();
  });

  test('Python SDK pinned to 2026-07-28, server-everything (a 2025 child, bridged): discover, tools, progress, prompt, resource, sampling', async (t) => {
    const token = await tokenFor('alice', '/everything/mcp');
    const out = await runStdioModern('everything', '/everything/mcp', token);
    t.diagnostic(`seconds after start: ${JSON.stringify(out.timings)}; supportedVersions ${JSON.stringify(out.discover.supportedVersions)}`);
    assertModernWire(out.http);

    // server/discover answered from the child's initialize result.
    assert.equal(out.server_name, 'mcp-servers/everything', JSON.stringify(out.discover));
    assert.equal(out.protocol_version, MODERN);
    assert.equal(out.discover.resultType, 'complete');
    assert.ok(out.discover.supportedVersions.includes(MODERN), JSON.stringify(out.discover));
    assert.ok(out.discover.capabilities?.tools, `the child's capabilities: ${JSON.stringify(out.discover)}`);

    for (const n of ['echo', 'trigger-long-running-operation', 'trigger-sampling-request']) {
      assert.ok(out.tools.includes(n), `${n} in ${out.tools}`);
    }
    assert.match(out.echo, /hello over 2026-07-28/);

    assert.match(out.long_running, /completed/);
    assert.deepEqual(out.progress, [1, 2, 3], 'every progress notification, in order');
    const long = out.http.find((e) => e.mcp_name === 'trigger-long-running-operation');
    assert.equal(long.content_type, 'text/event-stream', 'progress came on the request\'s own event stream');

    assert.ok(out.prompts.includes('simple-prompt') && out.prompt_messages > 0, JSON.stringify(out.prompts));
    assert.ok(out.resources > 0);
    assert.equal(out.resource_read.got, out.resource_read.asked);

    // The child's sampling/createMessage reached the client as input_required; its answer went back to the child.
    assert.equal(out.sampling_requests.length, 1, 'the callback ran once');
    assert.match(JSON.stringify(out.sampling_requests[0].messages), /hello/, 'the child\'s own request');
    assert.equal(out.sampling_is_error, false);
    assert.ok(out.sampling_result.includes(SAMPLED_TEXT), `the tool result carries the callback's answer: ${out.sampling_result}`);
    const rounds = out.http.filter((e) => e.mcp_name === 'trigger-sampling-request');
    assert.deepEqual(
      rounds.map((e) => e.retry),
      [false, true],
      'the call, then its retry with inputResponses and requestState (MRTR), nothing in between',
    );
    assertNoSecrets(proxy.logs(), { access_token: issuedTokens, password });
  });

  test('Python SDK pinned to 2026-07-28, a 2026-07-28 Python SDK child: everything passes through, its own MRTR included', async () => {
    const token = await tokenFor('alice', '/modern/mcp');
    const out = await runStdioModern('modern', '/modern/mcp', token);
    assertModernWire(out.http);

    assert.equal(out.server_name, 'interop-modern-stdio');
    assert.deepEqual(out.discover.supportedVersions, [MODERN], 'the child\'s own DiscoverResult, not one the proxy made');
    assert.deepEqual(out.tools, ['ask_name', 'count', 'seen', 'whoami']);

    const [w1, w2] = out.whoami;
    assert.equal(w1.pid, w2.pid, 'one process for the client\'s requests');
    assert.equal(w1.protocol_version, MODERN);
    assert.equal(ppidOf(w1.pid), proxy.child.pid, 'the process is the proxy\'s child');

    // The child's own input_required, and its own sealed requestState, went both ways unchanged.
    assert.equal(out.elicitations.length, 1, 'the elicitation callback ran once');
    assert.equal(out.elicitations[0].message, 'Who are you?');
    assert.equal(out.ask_name, `Hello, ${ELICITED_NAME}! (action accept, state asked-by-pid-${w1.pid})`);
    const rounds = out.http.filter((e) => e.mcp_name === 'ask_name');
    assert.deepEqual(rounds.map((e) => e.retry), [false, true]);

    assert.equal(out.count, 'counted to 3');
    assert.deepEqual(out.progress, [1, 2, 3]);
    assert.equal(out.http.find((e) => e.mcp_name === 'count').content_type, 'text/event-stream');
    assert.deepEqual(out.prompt, ['Please greet Grace warmly.']);
    assert.equal(out.resource.pid, w1.pid);

    // The child got the proxy's probe first, the client's requests as they were, and no initialize.
    const methods = out.seen.requests.map((r) => r.method);
    assert.equal(methods[0], 'server/discover', `the probe first: ${methods}`);
    assert.equal(methods.filter((m) => m === 'server/discover').length, 2, `the probe and the client's own: ${methods}`);
    assert.ok(!methods.includes('initialize'), `${methods}`);
    for (const r of out.seen.requests) assert.equal(r.protocol_version, MODERN, JSON.stringify(r));
  });

  test('alice\'s modern requests share her process; bob, another OAuth client (per: session) and a legacy session never do', async () => {
    const [aliceA, aliceB, bob] = await Promise.all([
      tokenFor('alice', '/modern/mcp'),
      tokenFor('alice', '/modern/mcp'),
      tokenFor('bob', '/modern/mcp'),
    ]);
    // At once, while none of these processes exists yet.
    const [a1, a2, b1, aB] = await Promise.all([
      whoami('/modern/mcp', aliceA),
      whoami('/modern/mcp', aliceA),
      whoami('/modern/mcp', bob),
      whoami('/modern/mcp', aliceB),
    ]);
    assert.equal(a1.pid, a2.pid, 'alice\'s two requests (one client) reach one process');
    assert.notEqual(b1.pid, a1.pid, 'bob has a process of his own');
    assert.notEqual(aB.pid, a1.pid, 'per: session: alice\'s other OAuth client has a process of its own');
    assert.equal((await whoami('/modern/mcp', aliceA)).pid, a1.pid, 'and keeps it');
    for (const w of [a1, b1, aB]) assert.equal(ppidOf(w.pid), proxy.child.pid, `${w.pid} is the proxy's child`);

    const legacy = await legacyWhoami('/modern/mcp', aliceA);
    assert.ok(Number.isInteger(legacy.pid));
    assert.ok(![a1.pid, b1.pid, aB.pid].includes(legacy.pid), 'an initialize session never shares a modern process');

    // per: user: one process for all of alice's modern requests, whatever the client.
    const [uA, uB, uBob] = await Promise.all([
      tokenFor('alice', '/modern-user/mcp'),
      tokenFor('alice', '/modern-user/mcp'),
      tokenFor('bob', '/modern-user/mcp'),
    ]);
    const [u1, u2, u3] = await Promise.all([whoami('/modern-user/mcp', uA), whoami('/modern-user/mcp', uB), whoami('/modern-user/mcp', uBob)]);
    assert.equal(u1.pid, u2.pid, 'per: user: alice\'s two clients share her process');
    assert.notEqual(u3.pid, u1.pid, 'per: user: bob has his own');
    assert.ok(![a1.pid, b1.pid, aB.pid].includes(u1.pid), 'another route, another process');
    const legacyUser = await legacyWhoami('/modern-user/mcp', uA);
    assert.notEqual(legacyUser.pid, u1.pid, 'per: user: alice\'s initialize session does not join her modern process');
  });

  test('versions and headers: unsupported → 400 -32022 with data.supported; header and body disagree → 400 -32020; no capabilities → 400 -32602; GET and DELETE → 405', async () => {
    for (const route of ['/everything/mcp', '/modern/mcp']) {
      const token = await tokenFor('alice', route);
      const unsupported = await modernPost(route, token, 'tools/list', {}, {
        headers: { 'mcp-protocol-version': '2099-01-01' },
        meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01' },
      });
      assert.equal(unsupported.status, 400, unsupported.show);
      assert.equal(unsupported.answer?.error?.code, -32022, unsupported.show);
      assert.ok(Array.isArray(unsupported.answer.error.data?.supported), unsupported.show);
      assert.ok(unsupported.answer.error.data.supported.includes(MODERN), unsupported.show);

      for (const [header, inBody] of [
        [MODERN, '2025-11-25'],
        [MODERN, '2026-07-29'],
        ['2025-11-25', MODERN],
      ]) {
        const mismatch = await modernPost(route, token, 'tools/list', {}, {
          headers: { 'mcp-protocol-version': header },
          meta: { 'io.modelcontextprotocol/protocolVersion': inBody },
        });
        assert.equal(mismatch.status, 400, `header ${header}, _meta ${inBody}: ${mismatch.show}`);
        assert.equal(mismatch.answer?.error?.code, -32020, `header ${header}, _meta ${inBody}: ${mismatch.show}`);
      }

      const noHeader = await modernPost(route, token, 'tools/list', {}, { headers: { 'mcp-protocol-version': null } });
      assert.equal(noHeader.status, 400, `no MCP-Protocol-Version, 2026-07-28 in _meta: ${noHeader.show}`);
      assert.equal(noHeader.answer?.error?.code, -32020, noHeader.show);
      // A required _meta field missing: malformed, -32602 (2026-07-28 basic, per-request protocol fields).
      const noCapabilities = await modernPost(route, token, 'tools/list', {}, {
        meta: { 'io.modelcontextprotocol/clientCapabilities': undefined },
      });
      assert.equal(noCapabilities.status, 400, noCapabilities.show);
      assert.equal(noCapabilities.answer?.error?.code, -32602, noCapabilities.show);

      // The other mirrored headers (2026-07-28 Streamable HTTP, Server Validation).
      const wrongName = await modernPost(route, token, 'tools/call', { name: 'echo', arguments: { message: 'x' } }, {
        headers: { 'mcp-name': 'get-env' },
      });
      assert.equal(wrongName.status, 400, wrongName.show);
      assert.equal(wrongName.answer?.error?.code, -32020, wrongName.show);
      const noMethod = await modernPost(route, token, 'tools/list', {}, { headers: { 'mcp-method': null } });
      assert.equal(noMethod.status, 400, noMethod.show);
      assert.equal(noMethod.answer?.error?.code, -32020, noMethod.show);

      for (const method of ['GET', 'DELETE']) {
        const res = await fetch(`${proxy.url}${route}`, {
          method,
          headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'mcp-protocol-version': MODERN },
        });
        const body = await res.text();
        assert.equal(res.status, 405, `${method} ${route} without a session: ${res.status} ${body.slice(0, 300)}`);
      }
    }
  });

  test('bridged MRTR: the proxy\'s requestState is bound to its user and client; another one\'s retry with it is refused', async () => {
    // server-everything asks for sampling during the call: the requestState is the proxy's.
    const route = '/everything/mcp';
    const [alice, aliceOther, bob] = await Promise.all([tokenFor('alice', route), tokenFor('alice', route), tokenFor('bob', route)]);
    const sampling = { capabilities: { sampling: {} } };
    // The first request of alice's process declares sampling: the proxy's initialize of the child says so.
    const list = await modernPost(route, alice, 'tools/list', {}, sampling);
    assert.equal(list.status, 200, list.show);
    assert.equal(list.answer?.result?.resultType, 'complete', `a 2025 child's result gets resultType: ${list.show}`);
    assert.ok(list.answer.result.tools.some((t) => t.name === 'trigger-sampling-request'), list.show);
    // A method the 2026-07-28 revision removed, which the 2025 child would still answer.
    const ping = await modernPost(route, alice, 'ping', {}, sampling);
    assert.equal(ping.status, 404, ping.show);
    assert.equal(ping.answer?.error?.code, -32601, ping.show);

    const call = { name: 'trigger-sampling-request', arguments: { prompt: 'bound state', maxTokens: 5 } };
    const first = await modernPost(route, alice, 'tools/call', call, sampling);
    assert.equal(first.status, 200, first.show);
    const asked = first.answer?.result;
    assert.equal(asked?.resultType, 'input_required', first.show);
    const [key, request] = Object.entries(asked.inputRequests ?? {})[0] ?? [];
    assert.equal(request?.method, 'sampling/createMessage', first.show);
    assert.equal(typeof asked.requestState, 'string', first.show);

    const injected = (who) => ({
      ...call,
      requestState: asked.requestState,
      inputResponses: { [key]: { role: 'assistant', model: 'x', content: { type: 'text', text: `injected by ${who}` } } },
    });
    const replays = [];
    for (const [who, token] of [
      ['bob', bob],
      ['alice through another client', aliceOther],
    ]) {
      replays.push([who, await modernPost(route, token, 'tools/call', injected(who), sampling)]);
    }

    // Alice's own retry still completes her request: the others' attempts did not use it up.
    const done = await modernPost(route, alice, 'tools/call', injected('alice'), sampling);
    assert.equal(done.status, 200, done.show);
    assert.equal(done.answer?.result?.resultType, 'complete', done.show);
    assert.match(textOf(done.answer.result), /injected by alice/, done.show);

    for (const [who, replay] of replays) {
      assert.ok(!JSON.stringify(replay.messages).includes(`injected by ${who}`), `${who} got the original request's result: ${replay.show}`);
      assert.ok(replay.answer?.error, `${who}'s retry with alice's requestState is refused: ${replay.show}`);
    }
  });

  test('a 2026-07-28 child\'s own input_required and sealed requestState pass through unchanged; another user\'s retry with it is refused', async () => {
    const mRoute = '/modern/mcp';
    const [mAlice, mBob] = await Promise.all([tokenFor('alice', mRoute), tokenFor('bob', mRoute)]);
    const elicitation = { capabilities: { elicitation: { form: {} } } };
    const ask = { name: 'ask_name', arguments: { greeting: 'Hi' } };
    // The child's own error for an undeclared capability, with the status the revision gives it.
    const undeclared = await modernPost(mRoute, mAlice, 'tools/call', ask);
    assert.equal(undeclared.status, 400, undeclared.show);
    assert.equal(undeclared.answer?.error?.code, -32021, undeclared.show);
    assert.deepEqual(undeclared.answer.error.data, { requiredCapabilities: { elicitation: {} } }, undeclared.show);
    const mFirst = await modernPost(mRoute, mAlice, 'tools/call', ask, elicitation);
    const mAsked = mFirst.answer?.result;
    assert.equal(mAsked?.resultType, 'input_required', mFirst.show);
    assert.equal(mAsked.inputRequests?.name?.method, 'elicitation/create', mFirst.show);
    assert.match(mAsked.requestState ?? '', /^v1\.[A-Za-z0-9_-]+$/, `the child's own sealed state: ${mFirst.show}`);
    const mRetry = (name) => ({ ...ask, requestState: mAsked.requestState, inputResponses: { name: { action: 'accept', content: { name } } } });
    const mReplay = await modernPost(mRoute, mBob, 'tools/call', mRetry('Mallory'), elicitation);
    assert.ok(!JSON.stringify(mReplay.messages).includes('Mallory'), mReplay.show);
    assert.ok(mReplay.answer?.error, `bob's retry with alice's requestState is refused: ${mReplay.show}`);
    const { pid } = await whoami(mRoute, mAlice);
    const mDone = await modernPost(mRoute, mAlice, 'tools/call', mRetry('Alice'), elicitation);
    assert.equal(textOf(mDone.answer?.result), `Hi, Alice! (action accept, state asked-by-pid-${pid})`, mDone.show);
  });

  test('after SIGTERM the proxy is gone and so is every process it started', async (t) => {
    // A process of each route at least (the earlier tests left more).
    const [m, e] = await Promise.all([tokenFor('bob', '/modern-user/mcp'), tokenFor('bob', '/everything/mcp')]);
    await whoami('/modern-user/mcp', m);
    const listed = await modernPost('/everything/mcp', e, 'tools/list');
    assert.equal(listed.status, 200, listed.show);
    const children = processesWithEnv('STDIO_MODERN_MARK', mark);
    assert.ok(children.length >= 2, `the proxy's stdio processes, found by their environment: ${children}`);
    for (const pid of children) assert.equal(ppidOf(pid), proxy.child.pid, `${pid} is the proxy's child`);
    t.diagnostic(`${children.length} stdio processes running before SIGTERM`);
    const exit = await proxy.stop({ signal: 'SIGTERM' });
    assert.deepEqual(exit, { code: 0, sig: null }, 'the proxy exited by itself (not the SIGKILL fallback)');
    assert.deepEqual(stillThere(children), {}, 'no process of the proxy\'s outlived it, not even a zombie');
    assert.deepEqual(processesWithEnv('STDIO_MODERN_MARK', mark), []);
    assertNoSecrets(proxy.logs(), { access_token: issuedTokens, password });
  });
});
