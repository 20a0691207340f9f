// Idle event streams through the proxy: resident memory per stream and event latency.
//
//   node sse-bench.mjs --port 18004 --url http://127.0.0.1:18003/bench/sse --token T \
//        --streams 10000 --proto h1|h2 [--pid PROXY_PID] [--samples 2000]
//
// One process plays both ends, so that both timestamps come from the same clock and the
// same event loop:
// - the upstream: an HTTP server on --port; GET /sse?id=N answers 200 text/event-stream,
//   sends ": open" and then stays idle (no keep-alives of its own);
// - the client: opens --streams streams to --url (the proxy's route whose upstream is
//   this server; or this server itself for a baseline without proxy). h1: one HTTP/1.1
//   connection per stream; h2: HTTP/2 with prior knowledge, --per-conn streams each.
// Then: the proxy's VmRSS before and after opening (/proc/PID/status); --samples events,
// one at a time, each written by the upstream on a random stream and timed until it
// arrives at the client end (process.hrtime, CLOCK_MONOTONIC; the event loop polls
// without sleeping meanwhile, so an idle client's wake-up is not counted); finally one
// event written to every stream at once (fan-out, informational).
// Prints one JSON line. Node built-ins only.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string' },
    url: { type: 'string' },
    token: { type: 'string', default: '' },
    streams: { type: 'string', default: '10000' },
    proto: { type: 'string', default: 'h1' },
    'per-conn': { type: 'string', default: '250' },
    pid: { type: 'string', default: '' },
    samples: { type: 'string', default: '2000' },
    parallel: { type: 'string', default: '200' },
  },
});
const N = Number(opt.streams);
const url = new URL(opt.url);
const headers = { accept: 'text/event-stream' };
if (opt.token) headers.authorization = `Bearer ${opt.token}`;

// ------------------------------------------------------------------ upstream end
const upstream = new Map(); // id -> response
const server = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (req.method !== 'GET' || u.pathname !== '/sse') {
    res.writeHead(404).end();
    return;
  }
  const id = u.searchParams.get('id') ?? String(Math.random());
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(': open\n\n');
  upstream.set(id, res);
  res.on('close', () => upstream.delete(id));
});
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.keepAliveTimeout = 600_000;
await new Promise((r) => server.listen(Number(opt.port), '127.0.0.1', 4096, r));

// ------------------------------------------------------------------ client end
const rssKb = () => {
  if (!opt.pid) return null;
  const m = fs.readFileSync(`/proc/${opt.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : null;
};
const sent = new Map(); // seq -> hrtime at write
const probes = new Map(); // seq -> latency ns
let broadcastArrivals = [];
let broadcastT0 = 0n;
const EVENT = /"seq":(-?\d+)/g;

function onData(state, chunk) {
  const now = process.hrtime.bigint();
  state.buf += chunk.toString('latin1');
  if (!state.open && state.buf.includes(': open')) {
    state.open = true;
    state.resolve();
  }
  let m;
  let last = 0;
  EVENT.lastIndex = 0;
  while ((m = EVENT.exec(state.buf)) !== null) {
    const seq = Number(m[1]);
    if (seq < 0) broadcastArrivals.push(now - broadcastT0);
    else if (sent.has(seq)) probes.set(seq, now - sent.get(seq));
    last = EVENT.lastIndex;
  }
  state.buf = state.buf.slice(last).slice(-256);
}

const closers = [];
function openH1(id) {
  return new Promise((resolve, reject) => {
    const state = { buf: '', open: false, resolve };
    const sock = net.connect(Number(url.port), url.hostname);
    sock.setNoDelay(true);
    let req = `GET ${url.pathname}?id=${id} HTTP/1.1\r\nhost: ${url.host}\r\n`;
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    sock.write(req + '\r\n');
    sock.on('data', (c) => onData(state, c));
    sock.on('error', reject);
    sock.on('close', () => {
      if (!state.open) reject(new Error(`stream ${id} closed: ${state.buf.slice(0, 300)}`));
    });
    closers.push(() => sock.destroy());
  });
}

const sessions = [];
function openH2(id) {
  const idx = Math.floor(id / Number(opt['per-conn']));
  if (!sessions[idx]) {
    sessions[idx] = http2.connect(url.origin);
    sessions[idx].on('error', (e) => console.error('h2 session:', e.message));
    closers.push(() => sessions[idx].destroy());
  }
  return new Promise((resolve, reject) => {
    const state = { buf: '', open: false, resolve };
    const s = sessions[idx].request({ ':method': 'GET', ':path': `${url.pathname}?id=${id}`, ...headers });
    s.on('response', (h) => {
      if (h[':status'] !== 200) reject(new Error(`stream ${id}: HTTP ${h[':status']}`));
    });
    s.on('data', (c) => onData(state, c));
    s.on('error', reject);
  });
}

function pct(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(Number(sorted[i]) / 100) / 10; // µs, 0.1 µs
}

const out = { proto: opt.proto, streams: N, url: opt.url };
await sleep(500);
out.rss_before_kb = rssKb();
const started = Date.now();
const open = opt.proto === 'h2' ? openH2 : openH1;
let next = 0;
await Promise.all(
  Array.from({ length: Number(opt.parallel) }, async () => {
    while (next < N) await open(next++);
  }),
);
out.open_s = (Date.now() - started) / 1000;
out.upstream_open = upstream.size;
await sleep(2000);
out.rss_after_kb = rssKb();
if (out.rss_before_kb !== null) {
  out.rss_per_stream_kb = Math.round(((out.rss_after_kb - out.rss_before_kb) / N) * 100) / 100;
}

// Probe: one event at a time on a random stream, 1 ms apart, while the loop spins.
const ids = [...upstream.keys()];
let spinning = true;
const spin = () => {
  if (spinning) setImmediate(spin);
};
spin();
const samples = Number(opt.samples);
for (let seq = 0; seq < samples; seq++) {
  const res = upstream.get(ids[Math.floor(Math.random() * ids.length)]);
  sent.set(seq, process.hrtime.bigint());
  res.write(`event: probe\ndata: {"seq":${seq}}\n\n`);
  const deadline = Date.now() + 1000;
  while (!probes.has(seq) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  await sleep(1);
}
spinning = false;
const lat = [...probes.values()];
out.probe = {
  sent: samples, received: lat.length,
  p50_us: pct(lat, 50), p90_us: pct(lat, 90), p99_us: pct(lat, 99), max_us: pct(lat, 100),
};

// Fan-out: one event on every stream.
broadcastArrivals = [];
broadcastT0 = process.hrtime.bigint();
const event = 'event: broadcast\ndata: {"seq":-1}\n\n';
for (const res of upstream.values()) res.write(event);
const writeAll = process.hrtime.bigint() - broadcastT0;
const deadline = Date.now() + 15_000;
while (broadcastArrivals.length < upstream.size && Date.now() < deadline) await sleep(5);
out.broadcast = {
  received: broadcastArrivals.length, upstream_write_all_us: Number(writeAll / 1000n),
  p50_us: pct(broadcastArrivals, 50), p99_us: pct(broadcastArrivals, 99), last_us: pct(broadcastArrivals, 100),
};
out.rss_end_kb = rssKb();
console.log(JSON.stringify(out));
for (const close of closers) close();
process.exit(0);
