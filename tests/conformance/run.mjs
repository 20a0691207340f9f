#!/usr/bin/env node
// Runs the official MCP conformance suite (@modelcontextprotocol/conformance)
// against mcp-oauth-proxy:
//
//   server scenarios         suite → shim (adds the bearer token) → proxy → server-everything,
//                            over Streamable HTTP and (a stdio route) started by the proxy
//   authorization scenarios  suite → the proxy's authorization server; the login and
//                            consent pages are filled in by this script
//
// and judges the outcome against expected-failures.json. Exits non-zero on any
// unexpected failure or unexpected pass, and on any check that passes over HTTP
// but not over stdio. See README.md beside this file.
//
//   node tests/conformance/run.mjs [--scenario ID]... [--only server|authorization]
//                                  [--upstream http|stdio|both]
//                                  [--suite active|all|pending|draft] [--direct] [--verbose] [--keep]

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import { authorizeAsUser, discover, obtainToken, registerClient } from './lib/oauth.mjs';
import { startShim } from './lib/shim.mjs';
import {
  CONFORMANCE_DIR,
  CONFORMANCE_JS,
  NODE22,
  freePort,
  hashPassword,
  killAll,
  missingPieces,
  randomToken,
  startEverything,
  startProxy,
  track,
  waitFor,
} from './lib/stack.mjs';

const USAGE = `usage: node tests/conformance/run.mjs [options]
  --scenario ID   run only this scenario (server or authorization id; repeatable)
  --only KIND     run only the "server" or the "authorization" scenarios
  --upstream KIND the server scenarios' upstream: "http" (server-everything over Streamable
                  HTTP), "stdio" (the same server started by the proxy, a stdio route), or
                  "both" (the default; then every check passing over HTTP must pass over stdio)
  --suite NAME    the suite's server suite: active (default), all, pending, draft
  --verbose       echo the suite's own output and the shim's request log
  --keep          keep the results directory (it is kept anyway on failure)
  --direct        run the server scenarios against server-everything itself, without
                  the proxy and the shim (to tell the proxy's faults from the upstream's)
  -h, --help      this text`;

let args;
try {
  args = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true, default: [] },
      only: { type: 'string' },
      upstream: { type: 'string', default: 'both' },
      suite: { type: 'string', default: 'active' },
      verbose: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      direct: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (e) {
  console.error(`${e.message}\n${USAGE}`);
  process.exit(64);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
if (args.only && !['server', 'authorization'].includes(args.only)) {
  console.error(`--only must be "server" or "authorization"\n${USAGE}`);
  process.exit(64);
}
if (!['http', 'stdio', 'both'].includes(args.upstream)) {
  console.error(`--upstream must be "http", "stdio" or "both"\n${USAGE}`);
  process.exit(64);
}
/** The server scenarios' upstreams this run covers (--direct: server-everything alone, over HTTP). */
const VARIANTS = args.direct || args.upstream === 'http' ? ['http'] : args.upstream === 'stdio' ? ['stdio'] : ['http', 'stdio'];

const TOTAL_TIMEOUT_MS = Number(process.env.CONFORMANCE_TIMEOUT_MS ?? 280_000);
const SERVER_SUITE_TIMEOUT_MS = 180_000;
const AUTHORIZATION_TIMEOUT_MS = 60_000;

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}
const watchdog = setTimeout(() => {
  console.error(`conformance: gave up after ${TOTAL_TIMEOUT_MS / 1000} s (CONFORMANCE_TIMEOUT_MS)`);
  console.log('conformance: 0 passed, 1 failed');
  killAll();
  process.exit(1);
}, TOTAL_TIMEOUT_MS);
watchdog.unref();

const say = (line = '') => console.log(line);
const indent = (text, by = '      ') => text.replace(/^(?=.)/gm, by);

// ---------------------------------------------------------------------------
// The suite's CLI.

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** Runs the suite's CLI with Node 22; `onLine` sees every stdout line. Resolves with its exit status and output. */
function runSuite(argv, { logFile, timeout, onLine = () => {}, quiet = false }) {
  return new Promise((resolve) => {
    const child = track(
      spawn(NODE22, [CONFORMANCE_JS, ...argv], {
        cwd: path.dirname(logFile),
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      }),
    );
    let output = '';
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (raw) => {
      const l = raw.replace(ANSI, '');
      output += `${l}\n`;
      if (args.verbose && !quiet) console.log(`  [suite] ${l}`);
      onLine(l, child);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      const d = chunk.replace(ANSI, '');
      output += d;
      if (args.verbose && !quiet) process.stdout.write(d.replace(/^(?=.)/gm, '  [suite stderr] '));
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeout);
    // 'close' comes after stdout and stderr have ended, so every line has been seen.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      writeFileSync(logFile, output);
      resolve({ code, signal, timedOut, output });
    });
  });
}

async function listScenarios(kind) {
  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-conformance-list-'));
  try {
    const { output } = await runSuite(['list', `--${kind}`], { logFile: path.join(dir, 'list.log'), timeout: 30_000, quiet: true });
    return [...output.matchAll(/^ {2}- (\S+)/gm)].map((m) => m[1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const TIMESTAMP = /-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/;

/**
 * The results the suite wrote under `outDir` (one `<prefix>-<scenario>-<time>/checks.json`
 * per scenario), plus the scenarios its closing summary names without a
 * result directory (a scenario that crashed).
 */
function collectResults(outDir, prefix, output) {
  const results = new Map();
  if (existsSync(outDir)) {
    for (const d of readdirSync(outDir)) {
      if (!d.startsWith(`${prefix}-`) || !TIMESTAMP.test(d)) continue;
      const scenario = d.slice(prefix.length + 1).replace(TIMESTAMP, '');
      const file = path.join(outDir, d, 'checks.json');
      if (!existsSync(file)) continue;
      results.set(scenario, JSON.parse(readFileSync(file, 'utf8')));
    }
  }
  for (const m of output.matchAll(/^[✓✗] (\S+): \d+ passed, \d+ failed$/gm)) {
    if (!results.has(m[1])) {
      results.set(m[1], [{ id: m[1], status: 'FAILURE', errorMessage: 'the suite reported this scenario but wrote no checks.json (see the suite log)' }]);
    }
  }
  return results;
}

// ---------------------------------------------------------------------------
// Expected failures.

const EXPECTED_FILE = path.join(CONFORMANCE_DIR, 'expected-failures.json');

function loadExpected() {
  const raw = JSON.parse(readFileSync(EXPECTED_FILE, 'utf8'));
  const map = new Map();
  for (const e of raw.expected_failures ?? []) {
    if (typeof e.scenario !== 'string' || typeof e.reason !== 'string' || !e.reason.trim()) {
      throw new Error(`${EXPECTED_FILE}: every entry needs "scenario" and a "reason": ${JSON.stringify(e)}`);
    }
    if (e.checks !== undefined && (!Array.isArray(e.checks) || !e.checks.length)) {
      throw new Error(`${EXPECTED_FILE}: "checks" must be a non-empty list when present: ${JSON.stringify(e)}`);
    }
    if (e.upstreams !== undefined && (!Array.isArray(e.upstreams) || !e.upstreams.every((u) => ['http', 'stdio'].includes(u)))) {
      throw new Error(`${EXPECTED_FILE}: "upstreams" lists "http" and/or "stdio" when present: ${JSON.stringify(e)}`);
    }
    if (map.has(e.scenario)) throw new Error(`${EXPECTED_FILE}: ${e.scenario} is listed twice`);
    map.set(e.scenario, e);
  }
  return map;
}

/** The expected failure of `scenario` when its upstream is `variant` (an entry applies to every upstream unless it lists some). */
function expectedFor(expected, scenario, variant) {
  const e = expected.get(scenario);
  return e && (!e.upstreams || !variant || e.upstreams.includes(variant)) ? e : undefined;
}

/** The ids of a scenario's passing checks. */
function passingIds(checks) {
  return new Set(checks.filter((c) => c.status === 'SUCCESS').map((c) => c.id));
}

/**
 * One scenario's verdict: `pass` (no failing check, nothing expected),
 * `xfail` (fails exactly as expected-failures.json says), `fail` (a failing
 * check that is not expected), `xpass` (an expected failure that now passes:
 * remove the entry).
 */
function judge(checks, entry) {
  const failing = checks.filter((c) => c.status === 'FAILURE');
  if (!entry) return failing.length ? { verdict: 'fail', unexpected: failing } : { verdict: 'pass' };
  if (!entry.checks) return failing.length ? { verdict: 'xfail' } : { verdict: 'xpass', stale: ['(whole scenario)'] };
  const expected = new Set(entry.checks);
  const unexpected = failing.filter((c) => !expected.has(c.id));
  if (unexpected.length) return { verdict: 'fail', unexpected };
  const failingIds = new Set(failing.map((c) => c.id));
  // A listed check that passed is stale; one that is absent or skipped is
  // tolerated (a scenario that stops early never reaches its later checks).
  const stale = entry.checks.filter((id) => !failingIds.has(id) && checks.some((c) => c.id === id && c.status === 'SUCCESS'));
  if (stale.length) return { verdict: 'xpass', stale };
  return failing.length ? { verdict: 'xfail' } : { verdict: 'xpass', stale: entry.checks };
}

function describeCheck(c) {
  const lines = [`${c.id}${c.name && c.name !== c.id ? ` (${c.name})` : ''}: ${c.errorMessage ?? c.description ?? ''}`];
  if (c.details) {
    const details = JSON.stringify(c.details, null, 2);
    lines.push(indent(details.length > 3000 ? `${details.slice(0, 3000)}\n… (truncated; see checks.json)` : details, '  '));
  }
  return lines.join('\n');
}

/** Runs the suite's server command once per `runs` entry (extra arguments) against `url`; returns scenario → checks. */
async function runServerScenarios(url, runs, outDir, logFile) {
  let output = '';
  for (const extra of runs) {
    const r = await runSuite(['server', '--url', url, '-o', outDir, ...extra], { logFile, timeout: SERVER_SUITE_TIMEOUT_MS });
    output += r.output;
    if (r.timedOut) console.error(`conformance: the server suite (${extra.join(' ')}) did not finish within ${SERVER_SUITE_TIMEOUT_MS / 1000} s`);
  }
  writeFileSync(logFile, output);
  const got = collectResults(outDir, 'server', output);
  if (!got.size) {
    got.set('(server suite)', [{ id: 'server-suite', status: 'FAILURE', errorMessage: `no results; the suite said:\n${output.slice(-3000)}` }]);
  }
  return got;
}

/** The ids of a scenario's failing checks, as one comparable line. */
function failingIds(checks) {
  return [...new Set(checks.filter((c) => c.status === 'FAILURE').map((c) => c.id))].sort().join(', ');
}

// ---------------------------------------------------------------------------
// Main.

async function main() {
  const problems = missingPieces();
  if (problems.length) {
    for (const p of problems) console.error(`conformance: ${p}`);
    console.log('conformance: 0 passed, 1 failed');
    return 1;
  }
  const expected = loadExpected();

  const [serverIds, authorizationIds] = await Promise.all([listScenarios('server'), listScenarios('authorization')]);
  for (const id of args.scenario) {
    if (!serverIds.includes(id) && !authorizationIds.includes(id)) {
      console.error(`conformance: unknown scenario ${id}; the suite has:\n  server: ${serverIds.join(' ')}\n  authorization: ${authorizationIds.join(' ')}`);
      return 64;
    }
  }
  for (const id of expected.keys()) {
    if (!serverIds.includes(id) && !authorizationIds.includes(id)) {
      console.error(`conformance: expected-failures.json names ${id}, which this version of the suite does not have`);
      return 1;
    }
  }
  const wantedServer = args.scenario.filter((s) => serverIds.includes(s));
  const wantedAuthorization = args.scenario.filter((s) => authorizationIds.includes(s));
  const runServer = args.only !== 'authorization' && (args.scenario.length === 0 || wantedServer.length > 0);
  const runAuthorization = !args.direct && args.only !== 'server' && (args.scenario.length === 0 || wantedAuthorization.length > 0);

  const dir = mkdtempSync(path.join(tmpdir(), 'mcp-conformance-'));
  const logs = {
    proxy: path.join(dir, 'proxy.log'),
    everything: path.join(dir, 'server-everything.log'),
    shim: path.join(dir, 'shim.log'),
    server: path.join(dir, 'suite-server.log'),
    serverStdio: path.join(dir, 'suite-server-stdio.log'),
    serverDirect: path.join(dir, 'suite-server-direct.log'),
    authorization: path.join(dir, 'suite-authorization.log'),
  };
  say(`conformance: @modelcontextprotocol/conformance ${suiteVersion()} on Node ${nodeVersion()}; results in ${dir}`);

  const username = 'alice';
  const password = `pw-${randomToken(12)}`;
  const everything = await startEverything({ logFile: logs.everything });
  const proxy = await startProxy({ dir, upstreamUrl: everything.mcpUrl, username, passwordHash: hashPassword(password), logFile: logs.proxy });
  say(`conformance: server-everything on ${everything.mcpUrl}, proxy route ${proxy.mcpUrl}`);
  const metadata = await discover(proxy.url);
  const trace = args.verbose ? (l) => console.log(`  [oauth] ${l}`) : undefined;

  /** result key (`server/<id>`, `server-stdio/<id>`, `authorization/<id>`) → { kind, variant, scenario, checks } */
  const results = new Map();
  /** result key → what the comparison run without the proxy said */
  const diagnosis = new Map();
  const shimLog = [];
  const shims = [];
  try {
    // ---- Server scenarios, through a shim per route (or, with --direct, straight to server-everything).
    for (const variant of runServer ? VARIANTS : []) {
      const kind = variant === 'http' ? 'server' : 'server-stdio';
      const routeUrl = variant === 'http' ? proxy.mcpUrl : proxy.stdioMcpUrl;
      let url;
      if (args.direct) {
        url = everything.mcpUrl;
        say(`conformance: server scenarios against ${url} directly (--direct: no proxy, no shim)`);
      } else {
        const redirectUri = 'http://127.0.0.1:9/callback'; // never requested: the code is read off the redirect
        const client = await registerClient(metadata, { redirectUris: [redirectUri], clientName: `conformance shim (${variant})` });
        const tokens = await obtainToken({ metadata, client, redirectUri, resource: routeUrl, username, password, trace });
        say(`conformance: access token for ${routeUrl} obtained through DCR → authorize → login → consent → token (scope "${tokens.scope ?? ''}")`);
        const shim = await startShim({
          target: proxy.url,
          token: () => tokens.access_token,
          onRequest: (r) => {
            const line = `${new Date().toISOString()} [${variant}] ${r.method} ${r.path} -> ${r.status} ${r.ms} ms ${r.type ?? ''}${r.error ? ` error: ${r.error}` : ''}`;
            shimLog.push(line);
            if (args.verbose) console.log(`  [shim] ${line}`);
          },
        });
        shims.push(shim);
        url = `${shim.url}${new URL(routeUrl).pathname}`;
        say(`conformance: server scenarios (${variant} upstream) against ${url} (shim → ${routeUrl})`);
      }
      const runs = wantedServer.length ? wantedServer.map((id) => ['--scenario', id]) : [['--suite', args.suite]];
      const got = await runServerScenarios(url, runs, path.join(dir, kind), logs[variant === 'http' ? 'server' : 'serverStdio']);
      for (const [scenario, checks] of got) results.set(`${kind}/${scenario}`, { kind, variant, scenario, checks });

      // Diagnosis: every server scenario that failed unexpectedly runs again
      // against server-everything alone. One that passes there fails because of
      // the proxy (or the shim); one that fails the same way there is
      // server-everything's own behaviour.
      if (!args.direct) {
        const suspects = [...got].filter(([id, checks]) => judge(checks, expectedFor(expected, id, variant)).verdict === 'fail').map(([id]) => id);
        if (suspects.length && suspects.every((id) => serverIds.includes(id))) {
          say(`conformance: ${suspects.length} server scenario(s) failed unexpectedly (${variant} upstream); running them against server-everything without the proxy to compare`);
          const alone = await runServerScenarios(everything.mcpUrl, suspects.map((id) => ['--scenario', id]), path.join(dir, `${kind}-direct`), logs.serverDirect);
          for (const id of suspects) {
            const checksAlone = alone.get(id) ?? [];
            const without = failingIds(checksAlone);
            const errors = checksAlone.filter((c) => c.status === 'FAILURE').map((c) => `${c.id}: ${c.errorMessage ?? ''}`);
            diagnosis.set(
              `${kind}/${id}`,
              without === failingIds(got.get(id))
                ? `the same checks fail against server-everything without the proxy (${errors.join('; ')}): upstream behaviour; if it is to stay, add it to expected-failures.json with the reason`
                : `without the proxy ${without ? `other checks fail (${errors.join('; ')})` : 'every check passes'}: look at the proxy (or the shim) first`,
            );
          }
        }
      }
    }

    // ---- Authorization scenarios, against the proxy's authorization server.
    if (runAuthorization) {
      // The suite's authorization-code-grant scenario uses the metadata found by
      // authorization-server-metadata-endpoint, so the command always runs both.
      const port = await freePort();
      const redirectUri = `http://127.0.0.1:${port}/callback`;
      const client = await registerClient(metadata, { redirectUris: [redirectUri], clientName: 'conformance authorization suite' });
      const outDir = path.join(dir, 'authorization');
      const authorizeFailures = [];
      const argv = ['authorization', '--url', metadata.issuer, '--client-id', client.client_id, '--resource', proxy.mcpUrl, '--port', String(port), '-o', outDir];
      say(`conformance: authorization scenarios against ${metadata.issuer} (client ${client.client_id}, callback ${redirectUri})`);
      const r = await runSuite(argv, {
        logFile: logs.authorization,
        timeout: AUTHORIZATION_TIMEOUT_MS,
        onLine: (line, child) => {
          // The suite prints the authorization URL for "a browser" and waits for the callback.
          if (!line.startsWith(`${metadata.authorization_endpoint}?`)) return;
          (async () => {
            const back = await authorizeAsUser(line.trim(), { username, password, trace });
            // Deliver the redirect to the suite's callback server (which starts
            // listening as it prints the URL: retry a refused connection briefly).
            const res = await waitFor('the suite\'s callback server to take the redirect', () => fetch(back), { timeout: 10_000, interval: 100 });
            await res.text();
          })().catch((e) => {
            authorizeFailures.push(e.message);
            console.error(`conformance: scripted login/consent failed: ${e.message}`);
            child.kill('SIGKILL'); // else it waits 5 minutes for a callback
          });
        },
      });
      if (r.timedOut) console.error(`conformance: the authorization suite did not finish within ${AUTHORIZATION_TIMEOUT_MS / 1000} s`);
      const got = collectResults(outDir, 'authorization-server', r.output);
      for (const id of authorizationIds) {
        if (!got.has(id)) {
          const why = authorizeFailures.length ? `scripted login/consent failed: ${authorizeFailures.join('; ')}` : 'no result (see the suite log)';
          got.set(id, [{ id, status: 'FAILURE', errorMessage: why }]);
        }
      }
      for (const [scenario, checks] of got) {
        if (!wantedAuthorization.length || wantedAuthorization.includes(scenario)) {
          results.set(`authorization/${scenario}`, { kind: 'authorization', variant: undefined, scenario, checks });
        }
      }
    }
  } finally {
    if (shims.length) writeFileSync(logs.shim, `${shimLog.join('\n')}\n`);
    for (const shim of shims) await shim.close();
    await proxy.stop();
    await everything.stop();
  }

  // ---- Verdicts.
  const counts = { pass: 0, xfail: 0, fail: 0, xpass: 0 };
  const details = [];
  say();
  for (const [key, { kind, variant, scenario, checks }] of results) {
    const entry = expectedFor(expected, scenario, variant);
    const v = judge(checks, entry);
    counts[v.verdict]++;
    const warnings = checks.filter((c) => c.status === 'WARNING').length;
    const label = { pass: 'ok   ', xfail: 'xfail', fail: 'FAIL ', xpass: 'XPASS' }[v.verdict];
    say(`  ${label} ${kind}/${scenario}${warnings ? ` (${warnings} warning${warnings > 1 ? 's' : ''})` : ''}${v.verdict === 'xfail' ? ` (expected: ${entry.checks ? entry.checks.join(', ') : 'whole scenario'})` : ''}`);
    if (v.verdict === 'fail') {
      const why = diagnosis.has(key) ? `\n    → ${diagnosis.get(key)}` : '';
      details.push(`FAIL ${kind}/${scenario}${why}\n${indent(v.unexpected.map(describeCheck).join('\n'))}`);
    }
    if (v.verdict === 'xpass') {
      details.push(`XPASS ${kind}/${scenario}: expected to fail (${v.stale.join(', ')}) but passed; remove the entry from expected-failures.json`);
    }
  }
  // Nothing lost over stdio: every check that passes over HTTP passes through the stdio route too.
  if (VARIANTS.length === 2) {
    let compared = 0;
    for (const [key, r] of results) {
      if (r.variant !== 'http') continue;
      compared++;
      const overStdio = results.get(`server-stdio/${r.scenario}`)?.checks ?? [];
      const stdioPassing = passingIds(overStdio);
      const lost = [...passingIds(r.checks)].filter((id) => !stdioPassing.has(id));
      if (lost.length) {
        counts.fail++;
        say(`  LOST  server-stdio/${r.scenario}: passes over HTTP, not over stdio: ${lost.join(', ')}`);
        const failing = overStdio.filter((c) => lost.includes(c.id));
        details.push(`LOST server-stdio/${r.scenario} (${key} passes these checks)\n${indent(failing.map(describeCheck).join('\n') || '(the checks did not run over stdio)')}`);
      }
    }
    say(`  ${compared} server scenario(s) compared: what passes over HTTP ${counts.fail ? 'does not all pass' : 'passes'} over stdio too`);
  }
  // An expected failure for a scenario that did not run in a full run is stale too.
  if (args.scenario.length === 0 && !args.only && !args.direct && args.suite === 'active') {
    for (const [scenario, entry] of expected) {
      // An entry for a scenario outside the suite's active set (`"suite": "all"`)
      // is checked by the runs that name it (./test.sh's 2026-07-28 run).
      if (entry.suite === 'all') continue;
      if (![...results.values()].some((r) => r.scenario === scenario)) {
        counts.xpass++;
        say(`  XPASS ${scenario}: listed in expected-failures.json but did not run`);
        details.push(`XPASS ${scenario}: listed in expected-failures.json but the suite did not run it; remove the entry`);
      }
    }
  }
  if (details.length) {
    say('\nconformance: details of what went wrong');
    for (const d of details) say(indent(d, '  '));
    if (!args.direct) {
      const proxyLog = readFileSync(logs.proxy, 'utf8').trimEnd().split('\n');
      say(`\nconformance: last lines of the proxy log (${logs.proxy}):`);
      say(indent(proxyLog.slice(-40).join('\n'), '  | '));
    }
  }
  if (details.length || args.keep) say(`\nconformance: logs, suite output and checks.json files kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
  say(`\nconformance: ${counts.xfail} expected failure${counts.xfail === 1 ? '' : 's'} (tests/conformance/expected-failures.json)`);
  const failed = counts.fail + counts.xpass;
  say(`conformance: ${counts.pass} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

function suiteVersion() {
  const pkg = path.join(CONFORMANCE_DIR, 'node_modules/@modelcontextprotocol/conformance/package.json');
  return JSON.parse(readFileSync(pkg, 'utf8')).version;
}

function nodeVersion() {
  return spawnSync(NODE22, ['--version'], { encoding: 'utf8' }).stdout.trim();
}

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (e) => {
    console.error(`conformance: ${e.stack ?? e}`);
    console.log('conformance: 0 passed, 1 failed');
    killAll();
    process.exit(1);
  },
);
