// Starting and stopping the real processes the interop tests talk to: the
// recording MCP upstream (tests/node/upstream.mjs) and the proxy binary
// (target/debug/mcp-oauth-proxy), plus small helpers: free ports, polling a
// condition, PKCE, secret-leak checks.
//
// Every child is killed when the test process exits, however it exits.

import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The proxy binary under test: `MCP_OAUTH_PROXY_BIN` (e.g. another worktree's build), else this tree's debug build. */
export const PROXY_BIN = process.env.MCP_OAUTH_PROXY_BIN ?? path.join(ROOT, 'target/debug/mcp-oauth-proxy');
export const NODE_DIR = path.join(ROOT, 'tests/node');
export const VENV_PYTHON = path.join(ROOT, '.venv/bin/python');

/** Fails unless .venv holds the official Python SDK (`./test.sh` and `.ci/run` make it). */
export function requirePythonSdk() {
  if (!existsSync(VENV_PYTHON) || spawnSync(VENV_PYTHON, ['-c', 'import mcp.client, httpx2']).status !== 0) {
    throw new Error(`${VENV_PYTHON} with the Python SDK is missing: python3 -m venv .venv && .venv/bin/pip install -r tests/interop/python/requirements.txt`);
  }
}

/**
 * Runs a Python script of tests/interop/python with .venv's interpreter; its
 * stdout is one JSON object. Resolves with { code, signal, out, stderr };
 * rejects when there is no JSON. `env` is added to this process's environment
 * (tokens go there rather than on a command line).
 */
export function runPythonJson(script, args, { env = {}, timeout = 170_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(VENV_PYTHON, [script, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      if (process.env.INTEROP_VERBOSE) process.stderr.write(d.replace(/^(?=.)/gm, 'python: '));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      try {
        resolve({ code, signal, out: JSON.parse(stdout), stderr });
      } catch {
        reject(new Error(`${path.basename(script)} exited ${code ?? signal} without JSON on stdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`));
      }
    });
  });
}

// ---------------------------------------------------------------------------
// Cleanup of every child, however the test process ends.

const children = new Set();
const tempDirs = new Set();

function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  tempDirs.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function makeTempDir(prefix = 'mcp-oauth-interop-') {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

// ---------------------------------------------------------------------------
// Small utilities.

/** Polls `check` (sync or async) every `interval` ms until it returns a truthy value, which is returned. */
export async function waitFor(what, check, { timeout = 20_000, interval = 50 } = {}) {
  const deadline = Date.now() + timeout;
  let lastError;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${lastError.message ?? lastError})` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export function randomToken(bytes = 24) {
  return randomBytes(bytes).toString('base64url');
}

export function pkcePair() {
  const verifier = randomBytes(32).toString('base64url'); // 43 chars
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

/** Asserts that none of `secrets` (strings; empty/undefined ignored) occurs in `logs`. */
export function assertNoSecrets(logs, secrets) {
  const leaked = [];
  for (const [name, value] of Object.entries(secrets)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (typeof v === 'string' && v.length >= 4 && logs.includes(v)) {
        const i = logs.indexOf(v);
        const line = logs.slice(logs.lastIndexOf('\n', i) + 1, logs.indexOf('\n', i) === -1 ? undefined : logs.indexOf('\n', i));
        leaked.push(`${name} appears in the proxy log, e.g. in: ${line.replaceAll(v, `<${name}>`)}`);
      }
    }
  }
  if (leaked.length) throw new Error(`secrets logged by the proxy:\n${leaked.join('\n')}`);
}

// ---------------------------------------------------------------------------
// The binary.

export function requireProxyBinary() {
  if (!existsSync(PROXY_BIN)) {
    throw new Error(
      `${PROXY_BIN} is missing: build it first with \`cargo build\` (./test.sh runs the Rust tests, which build it, before these)`,
    );
  }
  if (!existsSync(path.join(NODE_DIR, 'node_modules'))) {
    throw new Error('tests/node/node_modules is missing: run `npm ci --prefix tests/node` (./test.sh does)');
  }
}

/** Runs `mcp-oauth-proxy check-config --config FILE`: `{ status, stdout, stderr }`. */
export function checkConfig(configPath) {
  requireProxyBinary();
  const r = spawnSync(PROXY_BIN, ['check-config', '--config', configPath], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `mcp-oauth-proxy hash-password` with the password on stdin; returns the PHC string. */
export function hashPassword(password) {
  requireProxyBinary();
  const r = spawnSync(PROXY_BIN, ['hash-password'], { input: password, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`hash-password exited ${r.status}: ${r.stderr}`);
  const hash = r.stdout.trim();
  if (!hash.startsWith('$argon2')) throw new Error(`hash-password printed ${JSON.stringify(r.stdout)}`);
  return hash;
}

// ---------------------------------------------------------------------------
// The recording upstream.

export async function startUpstream({ token, args = [] } = {}) {
  if (!existsSync(path.join(NODE_DIR, 'node_modules'))) {
    throw new Error('tests/node/node_modules is missing: run `npm ci --prefix tests/node` (./test.sh does)');
  }
  const argv = [path.join(NODE_DIR, 'upstream.mjs'), '--port', '0', '--exit-with-stdin', ...args];
  if (token) argv.push('--token', token);
  const child = track(spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const rl = createInterface({ input: child.stdout });
  const line = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`upstream did not print its port within 15 s; stderr:\n${stderr}`)), 15_000);
    rl.once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`upstream exited ${code} before printing its port; stderr:\n${stderr}`));
    });
  });
  rl.close();
  const { port } = JSON.parse(line);
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    mcpUrl: `${url}/mcp`,
    child,
    stderr: () => stderr,
    async requests() {
      return (await fetch(`${url}/_requests`)).json();
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      child.kill('SIGTERM');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------
// The reference upstream: @modelcontextprotocol/server-everything, unmodified.

export const EVERYTHING_JS = path.join(NODE_DIR, 'node_modules/@modelcontextprotocol/server-everything/dist/index.js');

function portAccepts(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * Starts server-everything in `mode` (`sse`: GET /sse + POST /message;
 * `streamableHttp`: /mcp) on a free port. Its environment holds only PATH and
 * PORT: its `get-env` tool returns the whole environment. `stderr()` is its
 * log (one "Client Message from <session>" line per POST /message in sse mode).
 */
export async function startEverything({ mode = 'sse' } = {}) {
  if (!existsSync(EVERYTHING_JS)) {
    throw new Error(`${EVERYTHING_JS} is missing: run \`npm ci --prefix tests/node\` (./test.sh does)`);
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const child = track(
      spawn(process.execPath, [EVERYTHING_JS, mode], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: String(port) },
      }),
    );
    let stderr = '';
    let stdout = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    const gone = () => child.exitCode !== null || child.signalCode !== null;
    await waitFor(`server-everything (${mode}) to accept connections on port ${port}`, async () => gone() || (await portAccepts(port)), {
      timeout: 20_000,
      interval: 50,
    });
    if (gone()) {
      if (/EADDRINUSE/.test(stderr)) continue;
      throw new Error(`server-everything exited ${child.exitCode ?? child.signalCode}:\n${stderr}`);
    }
    const url = `http://127.0.0.1:${port}`;
    return {
      port,
      url,
      sseUrl: `${url}/sse`,
      mcpUrl: `${url}/mcp`,
      child,
      stderr: () => stderr,
      stdout: () => stdout,
      async stop() {
        if (gone()) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM'); // no handler: dies by the signal, which frees the port
        await exited;
      },
    };
  }
  throw new Error('server-everything found no free port after 5 attempts');
}

// ---------------------------------------------------------------------------
// The proxy.

const q = (s) => JSON.stringify(String(s)); // a JSON string is a valid YAML double-quoted scalar

/** The tool scopes of the `notes` route unless a test chooses others. */
export const DEFAULT_NOTES_SCOPES = {
  'notes:read': ['read_note', 'list_notes', 'echo', 'slow_stream'],
  'notes:write': ['write_note', 'delete_note'],
};

/** A YAML flow value: a list of strings, a boolean or number as is, anything else a quoted string. */
function yamlValue(v) {
  if (Array.isArray(v)) return `[${v.map(q).join(', ')}]`;
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  return q(v);
}

/**
 * YAML lines (indented by `indent`) for one entry of `routes:`. `upstream` is
 * a URL, or a stdio server: `{ command: [...], env: {...}, per, idle_timeout,
 * max_processes, cwd }`.
 */
function routeLines({ name, path: routePath, upstream, transport, upstreamToken, scopes, defaultScopes, allow }, indent = '  ') {
  const lines = [`- name: ${q(name)}`, `  path: ${q(routePath)}`];
  if (typeof upstream === 'string') {
    lines.push(`  upstream: ${q(upstream)}`);
  } else {
    lines.push('  upstream:', `    command: [${upstream.command.map(q).join(', ')}]`);
    for (const key of ['per', 'idle_timeout', 'cwd']) if (upstream[key] !== undefined) lines.push(`    ${key}: ${q(upstream[key])}`);
    if (upstream.max_processes !== undefined) lines.push(`    max_processes: ${Number(upstream.max_processes)}`);
    if (upstream.env) {
      lines.push('    env:');
      for (const [k, v] of Object.entries(upstream.env)) lines.push(`      ${k}: ${q(v)}`);
    }
  }
  if (transport) lines.push(`  transport: ${q(transport)}`);
  if (upstreamToken) lines.push('  upstream_auth:', `    bearer: ${q(upstreamToken)}`);
  if (allow) {
    lines.push('  allow:');
    for (const [k, v] of Object.entries(allow)) lines.push(`    ${k}: ${yamlValue(v)}`);
  }
  if (scopes) {
    lines.push('  scopes:');
    for (const [scope, patterns] of Object.entries(scopes)) lines.push(`    ${q(scope)}: [${patterns.map(q).join(', ')}]`);
  }
  if (defaultScopes) lines.push(`  default_scopes: [${defaultScopes.map(q).join(', ')}]`);
  return lines.map((l) => indent + l);
}

/**
 * YAML lines for `identity_providers:`: each provider an object of flat keys
 * (`name`, `type`, `display_name`, `issuer`, `client_id`, `client_secret`,
 * `scopes`, `allowed_email_domains`, `groups_claim`, `revalidate_after`,
 * `api_url`, `allowed_organizations`, …) whose values are strings, lists of
 * strings, booleans or numbers.
 */
function identityProviderLines(providers) {
  const lines = ['identity_providers:'];
  for (const p of providers) {
    let first = true;
    for (const [k, v] of Object.entries(p)) {
      if (v === undefined || v === null) continue;
      lines.push(`${first ? '  - ' : '    '}${k}: ${yamlValue(v)}`);
      first = false;
    }
  }
  return lines;
}

/**
 * The proxy's YAML config: a `notes` route (`/notes/mcp`) in front of
 * `upstreamUrl` with `scopes` (default DEFAULT_NOTES_SCOPES; `null` for none)
 * and `defaultScopes` (default `["notes:read"]`) and `notesAllow` (its
 * `allow`, default none), then the `routes` given (objects for routeLines:
 * name, path, upstream, transport, upstreamToken, scopes, defaultScopes,
 * allow). `users` may be empty or absent (no `users:` key then) when
 * `identityProviders` are given (see identityProviderLines). `server` adds
 * keys to the `server:` block (e.g. `{ sse_keepalive: '1s' }`).
 * `publicUrl` (default: the proxy's own address) and `redisUrl` (instead of
 * the state dir) are for instances behind a load balancer.
 */
export function proxyConfig({
  port,
  stateDir,
  upstreamUrl,
  upstreamToken,
  users = [],
  identityProviders = [],
  notesAllow,
  tokens = {},
  scopes = DEFAULT_NOTES_SCOPES,
  defaultScopes = ['notes:read'],
  routes = [],
  server = {},
  extra = '',
  publicUrl,
  redisUrl,
}) {
  const t = { access_ttl: '1h', refresh_ttl: '30d', refresh_grace: '10s', ...tokens };
  const lines = [
    `listen: ${q(`127.0.0.1:${port}`)}`,
    `public_url: ${q(publicUrl ?? `http://127.0.0.1:${port}`)}`,
    'state:',
    redisUrl ? `  redis: ${q(redisUrl)}` : `  dir: ${q(stateDir)}`,
    'tokens:',
    `  access_ttl: ${t.access_ttl}`,
    `  refresh_ttl: ${t.refresh_ttl}`,
    `  refresh_grace: ${t.refresh_grace}`,
    'server:',
    '  shutdown_grace: 2s',
  ];
  for (const [k, v] of Object.entries(server)) lines.push(`  ${k}: ${Array.isArray(v) ? `[${v.map(q).join(', ')}]` : q(v)}`);
  if (users.length) lines.push('users:');
  for (const u of users) {
    lines.push(`  - name: ${q(u.name)}`, `    password_hash: ${q(u.passwordHash)}`, `    groups: [${(u.groups ?? []).map(q).join(', ')}]`);
  }
  if (identityProviders.length) lines.push(...identityProviderLines(identityProviders));
  lines.push('routes:');
  lines.push(
    ...routeLines({
      name: 'notes',
      path: '/notes/mcp',
      upstream: upstreamUrl,
      upstreamToken,
      scopes: scopes ?? undefined,
      defaultScopes: scopes ? defaultScopes : undefined,
      allow: notesAllow,
    }),
  );
  for (const r of routes) lines.push(...routeLines(r));
  if (extra) lines.push(extra);
  return `${lines.join('\n')}\n`;
}

/**
 * Starts `mcp-oauth-proxy serve` on a free loopback port (or on `opts.port`,
 * when the caller had to know the URL before: e.g. to register the proxy's
 * callback at an identity provider; see reservePort). `opts` is passed to
 * `proxyConfig` (without port/stateDir, which the harness chooses unless
 * `opts.stateDir` is given). Returns a handle with `url`, `logs()`, `stop()`
 * and `restart()` (same port, same state dir, same config).
 */
export async function startProxy(opts) {
  requireProxyBinary();
  const dir = makeTempDir('mcp-oauth-proxy-interop-');
  const stateDir = opts.stateDir ?? path.join(dir, 'state');
  const configPath = path.join(dir, 'config.yaml');
  const logLevel = process.env.INTEROP_PROXY_LOG ?? 'info,mcp_oauth_proxy=debug';

  const handle = {
    port: 0,
    url: '',
    dir,
    stateDir,
    configPath,
    child: null,
    allLogs: '', // every run of this handle, including before restarts
    runLogs: '', // the current run
    logs() {
      return this.allLogs;
    },
    async stop({ signal = 'SIGTERM', timeout = 15_000 } = {}) {
      const child = this.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
      const r = await exited;
      clearTimeout(timer);
      this.child = null;
      return r;
    },
    async restart() {
      await this.stop();
      // The port is ours again once the old process is gone; wait for the kernel to agree.
      await waitFor(`port ${this.port} to be free again`, () => portIsFree(this.port), { timeout: 10_000 });
      const ok = await launch(this.port);
      if (!ok) throw new Error(`proxy did not restart on port ${this.port}:\n${this.runLogs}`);
    },
  };

  function launch(port) {
    writeFileSync(configPath, proxyConfig({ ...opts, port, stateDir }));
    handle.port = port;
    handle.url = `http://127.0.0.1:${port}`;
    handle.runLogs = '';
    const child = track(
      spawn(PROXY_BIN, ['serve', '--config', configPath], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, MCP_OAUTH_PROXY_LOG: logLevel },
      }),
    );
    handle.child = child;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      handle.runLogs += d;
      handle.allLogs += d;
      if (process.env.INTEROP_VERBOSE) process.stderr.write(d.replace(/^(?=.)/gm, 'proxy: '));
    });
    return (async () => {
      try {
        await waitFor(
          'the proxy to log "listening" or exit',
          () => handle.runLogs.includes('listening') || child.exitCode !== null || child.signalCode !== null,
          { timeout: 30_000, interval: 20 },
        );
      } catch (e) {
        throw new Error(`${e.message}; proxy log so far:\n${handle.runLogs}`);
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        // Let the last stderr lines arrive.
        await new Promise((r) => (child.stderr.readableEnded ? r() : child.stderr.once('end', r)));
        return false;
      }
      await waitFor(
        'GET /healthz to answer 200',
        async () => (await fetch(`${handle.url}/healthz`)).status === 200,
        { timeout: 10_000 },
      );
      return true;
    })();
  }

  if (opts.port) {
    if (await launch(opts.port)) return handle;
    throw new Error(`proxy did not start on port ${opts.port} (exit ${handle.child.exitCode}):\n${handle.runLogs}`);
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    if (await launch(port)) return handle;
    if (!handle.runLogs.includes('cannot listen')) {
      throw new Error(`proxy did not start (exit ${handle.child.exitCode}):\n${handle.runLogs}`);
    }
  }
  throw new Error(`proxy found no free port after 5 attempts:\n${handle.runLogs}`);
}

/**
 * Everything one test needs: an upstream with a random bearer token, a user
 * (alice) with a random password, and a proxy in front. `proxyOptions` go to
 * `proxyConfig` (e.g. `scopes`, `defaultScopes`, more `routes`, `server`).
 */
export async function startStack({ tokens, username = 'alice', proxyOptions = {} } = {}) {
  const upstreamToken = `upstream-${randomToken()}`;
  const password = `pw-${randomToken(12)}`;
  const upstream = await startUpstream({ token: upstreamToken });
  const proxy = await startProxy({
    upstreamUrl: upstream.mcpUrl,
    upstreamToken,
    users: [{ name: username, passwordHash: hashPassword(password), groups: ['staff'] }],
    tokens,
    ...proxyOptions,
  });
  return {
    upstream,
    proxy,
    upstreamToken,
    username,
    password,
    mcpUrl: `${proxy.url}/notes/mcp`,
    async stop() {
      await proxy.stop();
      await upstream.stop();
    },
  };
}

// ---------------------------------------------------------------------------
// OAuth and MCP over plain fetch.

export async function getJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${init?.method ?? 'GET'} ${url} answered ${res.status} with a non-JSON body: ${text.slice(0, 500)}`);
  }
  return { res, body };
}

export async function discover(proxyUrl) {
  const as = await getJson(`${proxyUrl}/.well-known/oauth-authorization-server`);
  if (as.res.status !== 200) throw new Error(`AS metadata: HTTP ${as.res.status} ${JSON.stringify(as.body)}`);
  return as.body;
}

export async function registerClient(metadata, clientMetadata) {
  const { res, body } = await getJson(metadata.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(clientMetadata),
  });
  if (res.status !== 201) throw new Error(`registration: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

export async function tokenRequest(metadata, params) {
  return getJson(metadata.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(params).toString(),
  });
}

/** Parses a Streamable HTTP response (JSON or SSE) into the JSON-RPC messages it carries. */
export async function readMcpMessages(res) {
  const ct = res.headers.get('content-type') ?? '';
  const text = await res.text();
  if (ct.startsWith('application/json')) return [JSON.parse(text)].flat();
  if (ct.startsWith('text/event-stream')) {
    const out = [];
    for (const block of text.split(/\r?\n\r?\n/)) {
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data) out.push(JSON.parse(data));
    }
    return out;
  }
  if (!text) return [];
  throw new Error(`unexpected content-type ${JSON.stringify(ct)}: ${text.slice(0, 300)}`);
}

/** POSTs one JSON-RPC message to an MCP endpoint. */
export function mcpPost(url, message, { token, sessionId, protocolVersion } = {}) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  if (sessionId) headers['mcp-session-id'] = sessionId;
  if (protocolVersion) headers['mcp-protocol-version'] = protocolVersion;
  return fetch(url, { method: 'POST', headers, body: JSON.stringify(message) });
}

export const PROTOCOL_VERSION = '2025-06-18';

export function initializeMessage(id = 1) {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion: PROTOCOL_VERSION,
      capabilities: {},
      clientInfo: { name: 'mcp-oauth-proxy-interop', version: '0.0.0' },
    },
  };
}
