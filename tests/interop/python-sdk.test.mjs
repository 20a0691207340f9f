// The official Python MCP SDK client (`mcp` from PyPI, pinned in
// tests/interop/python/requirements.txt, installed in .venv/ at the repo root)
// against the proxy: tests/interop/python/client_flow.py connects with the
// SDK's OAuthClientProvider over Streamable HTTP; discovery from the 401,
// dynamic registration, authorization in chromium (lib/browse.mjs) with the
// redirect to the Python program's own loopback callback server, code
// exchange with state and iss checked by the SDK, tools/list, tools/call, and
// after the access token expired a refresh (with rotation) and another call.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ROOT, VENV_PYTHON, assertNoSecrets, discover, runPythonJson, startStack } from './lib/harness.mjs';

const ACCESS_TTL_S = 3;
const CLIENT_FLOW = path.join(ROOT, 'tests/interop/python/client_flow.py');
const SETUP = 'python3 -m venv .venv && .venv/bin/pip install -r tests/interop/python/requirements.txt';

/** Fails with a clear message when the venv or the SDK in it is missing. */
function requireVenv() {
  if (!existsSync(VENV_PYTHON)) {
    throw new Error(`${VENV_PYTHON} is missing: create the venv with \`${SETUP}\` from the repository root (./test.sh and .ci/run do)`);
  }
  const r = spawnSync(VENV_PYTHON, ['-c', 'import mcp.client.auth, httpx2'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    throw new Error(`the Python SDK is not installed in .venv (${(r.stderr || r.error?.message || '').trim()}): run \`${SETUP}\``);
  }
}

/** Runs client_flow.py; resolves with its exit status, parsed JSON output and stderr. */
function runClientFlow(args) {
  return runPythonJson(CLIENT_FLOW, args, { env: { NODE: process.execPath } });
}

describe('official Python SDK client through the proxy', { timeout: 240_000 }, () => {
  let stack, metadata, run;

  before(async () => {
    requireVenv();
    stack = await startStack({ tokens: { access_ttl: `${ACCESS_TTL_S}s` } });
    metadata = await discover(stack.proxy.url);
    run = await runClientFlow(['--mcp-url', stack.mcpUrl, '--username', stack.username, '--password', stack.password]);
  });

  after(async () => {
    await stack?.stop();
  });

  /** Fails with the program's own account of what went wrong. */
  function requireSuccess() {
    const { code, out, stderr } = run;
    if (code !== 0 || !out.ok) {
      assert.fail(
        `client_flow.py failed after step "${out.step}": ${out.error}\n` +
          `HTTP exchanges:\n${(out.http ?? []).map((e) => `  ${e.method} ${e.url} → ${e.status}${e.form ? ` ${JSON.stringify(e.form)}` : ''}`).join('\n')}\n` +
          `stderr (last 4000 chars):\n${stderr.slice(-4000)}`,
      );
    }
    return out;
  }

  test('the SDK discovers, registers, authorizes in chromium (state and iss checked) and exchanges the code', (t) => {
    const out = requireSuccess();
    t.diagnostic(`mcp ${out.sdk_versions?.mcp}, python ${out.python}, negotiated protocol ${out.protocol_version}`);

    // Discovery started from the proxy's 401 and used the path-aware PRM URL.
    const http = out.http;
    assert.equal(http[0].status, 401, `the first request is refused: ${JSON.stringify(http[0])}`);
    assert.match(http[0].www_authenticate, /resource_metadata="/);
    assert.ok(
      http.some((e) => e.url === `${stack.proxy.url}/.well-known/oauth-protected-resource/notes/mcp` && e.status === 200),
      'PRM fetched at the path-aware URL',
    );
    assert.ok(
      http.some((e) => e.url === `${stack.proxy.url}/.well-known/oauth-authorization-server` && e.status === 200),
      'AS metadata fetched (the SDK compared its issuer exactly)',
    );

    assert.equal(out.registrations.length, 1, 'one dynamic registration');
    const reg = out.registrations[0];
    assert.equal(typeof reg.client_id, 'string');
    assert.deepEqual(reg.redirect_uris, [out.redirect_uri]);
    assert.ok(http.some((e) => e.method === 'POST' && e.url === metadata.registration_endpoint && e.status === 201), 'DCR answered 201');

    assert.equal(out.authorizations.length, 1, 'the user was sent through the browser once');
    const auth = out.authorizations[0];
    assert.ok(auth.url.startsWith(`${metadata.authorization_endpoint}?`), `${auth.url} is the advertised authorization_endpoint`);
    const p = auth.params;
    assert.equal(p.response_type, 'code');
    assert.equal(p.client_id, reg.client_id);
    assert.equal(p.redirect_uri, out.redirect_uri);
    assert.equal(p.code_challenge_method, 'S256');
    assert.equal(p.resource, stack.mcpUrl, 'resource (RFC 8707) from PRM');
    assert.ok(p.scope.split(' ').includes('notes:read'), `scope: ${p.scope}`);

    // Chromium followed the redirect to the Python program's loopback server.
    assert.ok(auth.browser_final_url.startsWith(`${out.redirect_uri}?`), `the browser ended at ${auth.browser_final_url}`);
    const cb = auth.callback.query;
    assert.equal(cb.error, undefined, `authorization error: ${JSON.stringify(cb)}`);
    assert.equal(typeof cb.code, 'string');
    assert.equal(cb.state, p.state, 'state round-trips');
    assert.equal(cb.iss, metadata.issuer, 'iss equals the metadata issuer (RFC 9207)');

    const grants = http.filter((e) => e.form?.grant_type);
    assert.equal(grants[0].form.grant_type, 'authorization_code');
    assert.equal(grants[0].status, 200, 'the code exchange succeeded');
    assert.equal(grants[0].form.resource, stack.mcpUrl, 'resource on the token request');
    const first = out.saved_tokens[0];
    assert.equal(first.token_type.toLowerCase(), 'bearer');
    assert.equal(typeof first.access_token, 'string');
    assert.equal(typeof first.refresh_token, 'string', 'a refresh token is issued');
    assert.equal(first.expires_in, ACCESS_TTL_S);
  });

  test("the SDK's protocol negotiation passes through the proxy: server/discover probe, then initialize", async (t) => {
    const out = requireSuccess();
    // mode "auto" (the SDK's default) first probes with the 2026-07-28 server/discover; this
    // upstream (TypeScript SDK server) answers 400, which must reach the client as the upstream's
    // own 4xx so that the SDK falls back to the initialize handshake.
    const mcp = out.http.filter((e) => e.url === stack.mcpUrl && e.authorization === 'Bearer');
    const probe = mcp.find((e) => e.jsonrpc_method === 'server/discover');
    if (probe) {
      assert.equal(probe.mcp_method, 'server/discover', 'the SDK sent Mcp-Method');
      const seen = (await stack.upstream.requests()).find((r) => r.path === '/mcp' && r.body?.includes('"server/discover"'));
      assert.ok(seen, 'the probe reached the upstream');
      assert.equal(probe.status, seen.status, 'the client got the upstream\'s status');
      t.diagnostic(`server/discover answered ${probe.status}; negotiated ${out.protocol_version}`);
    }
    assert.ok(mcp.some((e) => e.jsonrpc_method === 'initialize' && e.status === 200) || !probe, 'the SDK fell back to initialize');
    assert.equal(typeof out.protocol_version, 'string');
  });

  test('tools/list (filtered by the granted scope) and tools/call work', () => {
    const out = requireSuccess();
    // The 401 challenged scope="notes:read", the SDK asked for it: the write tools are hidden.
    assert.deepEqual([...out.tools].sort(), ['echo', 'list_notes', 'read_note', 'slow_stream']);
    assert.deepEqual(out.call_before_refresh, { is_error: false, text: 'hello from the Python SDK' });
  });

  test('after the access token expired the SDK refreshed it, the refresh token rotated, and the next call succeeded', () => {
    const out = requireSuccess();
    const probe = out.expired_token_probe;
    assert.equal(probe.status, 401, `the proxy refuses the expired access token: ${JSON.stringify(probe)}`);
    assert.match(probe.www_authenticate, /error="invalid_token"/);

    const grants = out.http.filter((e) => e.form?.grant_type);
    const refreshes = grants.filter((e) => e.form.grant_type === 'refresh_token');
    assert.ok(refreshes.length >= 1, `the SDK sent a refresh_token grant: ${JSON.stringify(grants)}`);
    assert.equal(refreshes[0].status, 200, 'the refresh succeeded');
    assert.equal(refreshes[0].form.resource, stack.mcpUrl, 'resource on the refresh request');
    assert.equal(grants.filter((e) => e.form.grant_type === 'authorization_code').length, 1, 'no second authorization');
    assert.equal(out.authorizations.length, 1, 'no second trip through the browser');
    assert.equal(out.registrations.length, 1, 'no second registration');

    assert.ok(out.saved_tokens.length >= 2, 'the SDK stored the refreshed tokens');
    const [first, last] = [out.saved_tokens[0], out.saved_tokens.at(-1)];
    assert.notEqual(last.access_token, first.access_token, 'a new access token');
    assert.equal(typeof last.refresh_token, 'string');
    assert.notEqual(last.refresh_token, first.refresh_token, 'the refresh token rotated');
    assert.deepEqual(out.call_after_refresh, { is_error: false, text: 'hello again after the refresh' });
  });

  test('the upstream saw only its own credential; the proxy logged no token, code or password', async () => {
    const out = requireSuccess();
    const mcpRequests = (await stack.upstream.requests()).filter((r) => r.path === '/mcp');
    assert.ok(mcpRequests.length > 0, 'the upstream was reached');
    for (const r of mcpRequests) {
      const auths = r.raw_headers.filter(([k]) => k === 'authorization').map(([, v]) => v);
      assert.deepEqual(auths, [`Bearer ${stack.upstreamToken}`], `${r.method} /mcp carried ${JSON.stringify(auths)}`);
    }
    assertNoSecrets(stack.proxy.logs(), {
      code: out.authorizations.map((a) => a.callback?.query.code),
      access_token: out.saved_tokens.map((t) => t.access_token),
      refresh_token: out.saved_tokens.map((t) => t.refresh_token),
      password: stack.password,
      upstream_token: stack.upstreamToken,
    });
  });
});
