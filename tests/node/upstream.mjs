#!/usr/bin/env node
// Test upstream for mcp-oauth-proxy: a real MCP server (official TypeScript SDK,
// Streamable HTTP, stateful sessions) that records every request it receives.
//
//   node tests/node/upstream.mjs --port 0 [--token T] [--json] [--stateless]
//                                [--exit-with-stdin] [--verbose]
//
// Prints exactly one line to stdout once listening: {"port": <port>}
// Everything else (errors, --verbose logs) goes to stderr.
// See tests/node/README.md for the endpoints.

import http from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

// ---------------------------------------------------------------- options

function parseCli() {
  try {
    return parseArgs({ options: CLI_OPTIONS, strict: true }).values;
  } catch (e) {
    console.error(`upstream: ${e.message}`);
    process.exit(64);
  }
}
const CLI_OPTIONS = {
  port: { type: 'string', default: '0' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  stateless: { type: 'boolean', default: false },
  'exit-with-stdin': { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
};
const opts = parseCli();

const PORT = Number.parseInt(opts.port, 10);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  console.error(`upstream: invalid --port ${opts.port}`);
  process.exit(64);
}
const TOKEN = opts.token;
const JSON_RESPONSES = opts.json;

const log = (...args) => {
  if (opts.verbose) console.error('upstream:', ...args);
};

// ---------------------------------------------------------------- state

/** Every request received (except the /_requests debug endpoint itself). */
let records = [];
let nextRecordId = 1;

/** In-memory notes, shared by all sessions. */
const notes = new Map([['welcome', 'Hello from the test upstream.']]);

/** Stateful mode: session id -> transport. */
const transports = new Map();

// ---------------------------------------------------------------- MCP server

function buildServer() {
  const server = new McpServer(
    { name: 'mcp-oauth-proxy-test-upstream', version: '1.0.0' },
    { capabilities: { logging: {} } },
  );

  const text = (t) => ({ content: [{ type: 'text', text: t }] });
  const error = (t) => ({ content: [{ type: 'text', text: t }], isError: true });

  server.registerTool(
    'echo',
    {
      description: 'Returns its message argument as text.',
      inputSchema: { message: z.string() },
    },
    async ({ message }) => text(message),
  );

  server.registerTool(
    'list_notes',
    { description: 'Lists the names of all notes.', inputSchema: {} },
    async () => text(JSON.stringify([...notes.keys()].sort())),
  );

  server.registerTool(
    'read_note',
    { description: 'Reads one note.', inputSchema: { name: z.string() } },
    async ({ name }) => (notes.has(name) ? text(notes.get(name)) : error(`no note named ${name}`)),
  );

  server.registerTool(
    'write_note',
    {
      description: 'Creates or replaces a note.',
      inputSchema: { name: z.string(), content: z.string() },
    },
    async ({ name, content }) => {
      notes.set(name, content);
      return text(`wrote ${name}`);
    },
  );

  server.registerTool(
    'delete_note',
    { description: 'Deletes a note.', inputSchema: { name: z.string() } },
    async ({ name }) => (notes.delete(name) ? text(`deleted ${name}`) : error(`no note named ${name}`)),
  );

  server.registerTool(
    'slow_stream',
    {
      description:
        'Sends `count` notifications `interval_ms` apart on the request stream ' +
        '(progress if the request has _meta.progressToken, else logging), then returns.',
      inputSchema: {
        count: z.number().int().min(0).max(10000).default(5),
        interval_ms: z.number().int().min(0).max(60000).default(200),
      },
    },
    async ({ count, interval_ms }, extra) => {
      const progressToken = extra._meta?.progressToken;
      let sent = 0;
      for (let i = 0; i < count; i++) {
        if (i > 0 && interval_ms > 0) await sleep(interval_ms);
        if (extra.signal.aborted) break;
        const t = Date.now();
        const notification =
          progressToken !== undefined
            ? {
                method: 'notifications/progress',
                params: { progressToken, progress: i + 1, total: count, message: `step ${i + 1} of ${count}` },
              }
            : {
                method: 'notifications/message',
                params: { level: 'info', logger: 'slow_stream', data: { i, t } },
              };
        try {
          await extra.sendNotification(notification);
          sent++;
        } catch (e) {
          log('slow_stream: notification failed, stopping:', e?.message ?? e);
          break;
        }
      }
      return text(`sent ${sent} of ${count} notifications`);
    },
  );

  return server;
}

const transportOptions = () => ({
  enableJsonResponse: JSON_RESPONSES,
});

// ---------------------------------------------------------------- helpers

function sendJson(res, status, value, headers = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

function jsonRpcError(res, status, code, message) {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function record(req, url) {
  const rawHeaders = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    rawHeaders.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
  }
  const rec = {
    id: nextRecordId++,
    time: Date.now(),
    method: req.method,
    path: url.pathname,
    query: url.search,
    headers: { ...req.headers }, // node lower-cases the names
    raw_headers: rawHeaders,
    body: null,
    body_len: null,
    status: null,
    completed: false, // response fully sent
    aborted: false, // connection closed before the response finished
  };
  records.push(rec);
  return rec;
}

// ---------------------------------------------------------------- handlers

async function handleMcp(req, res, rec) {
  const body = req.method === 'POST' ? await readBody(req) : undefined;
  if (body !== undefined) {
    rec.body = body.toString('utf8');
    rec.body_len = body.length;
    // @hono/node-server (used by the SDK's node transport) reads the body from
    // `rawBody` when present, so the SDK still parses and validates it itself.
    req.rawBody = body;
  }

  if (TOKEN !== undefined && req.headers.authorization !== `Bearer ${TOKEN}`) {
    sendJson(
      res,
      401,
      { error: 'unauthorized', error_description: 'missing or wrong upstream bearer token' },
      { 'www-authenticate': 'Bearer realm="test-upstream"' },
    );
    return;
  }

  if (opts.stateless) {
    const server = buildServer();
    const transport = new StreamableHTTPServerTransport({ ...transportOptions(), sessionIdGenerator: undefined });
    res.on('close', () => {
      transport.close().catch(() => {});
      server.close().catch(() => {});
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
    return;
  }

  const sessionId = req.headers['mcp-session-id'];
  if (sessionId !== undefined) {
    const transport = transports.get(sessionId);
    if (!transport) {
      jsonRpcError(res, 404, -32001, 'Session not found');
      return;
    }
    await transport.handleRequest(req, res);
    return;
  }

  // No session id: only an initialize request may come here. A fresh transport
  // answers anything else (and malformed JSON) with the SDK's own errors.
  const server = buildServer();
  const transport = new StreamableHTTPServerTransport({
    ...transportOptions(),
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => {
      log('session initialized', id);
      transports.set(id, transport);
    },
  });
  transport.onclose = () => {
    if (transport.sessionId) {
      log('session closed', transport.sessionId);
      transports.delete(transport.sessionId);
    }
    server.close().catch(() => {});
  };
  await server.connect(transport);
  await transport.handleRequest(req, res);
}

async function handleSse(req, res, url) {
  const count = Number.parseInt(url.searchParams.get('count') ?? '5', 10);
  const interval = Number.parseInt(url.searchParams.get('interval_ms') ?? '200', 10);
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  res.flushHeaders();
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  for (let i = 0; i < count && !closed; i++) {
    if (i > 0) await sleep(interval);
    if (closed) break;
    res.write(`data: ${JSON.stringify({ i, t: Date.now() })}\n\n`);
  }
  res.end();
}

async function handleEchoBody(req, res, rec) {
  const hash = createHash('sha256');
  let len = 0;
  for await (const chunk of req) {
    len += chunk.length;
    hash.update(chunk);
  }
  rec.body_len = len;
  sendJson(res, 200, { len, sha256: hash.digest('hex') });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://127.0.0.1');
  log(req.method, req.url);

  if (url.pathname === '/_requests') {
    if (req.method === 'GET') return sendJson(res, 200, records);
    if (req.method === 'DELETE') {
      records = [];
      return sendJson(res, 200, { cleared: true });
    }
    return sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET, DELETE' });
  }

  const rec = record(req, url);
  res.on('finish', () => {
    rec.completed = true;
  });
  res.on('close', () => {
    rec.status = res.statusCode;
    if (!res.writableFinished) rec.aborted = true;
  });

  if (url.pathname === '/mcp') {
    if (!['POST', 'GET', 'DELETE'].includes(req.method)) {
      return sendJson(res, 405, { error: 'method not allowed' }, { allow: 'POST, GET, DELETE' });
    }
    return handleMcp(req, res, rec);
  }
  if (url.pathname === '/_sse') return handleSse(req, res, url);
  if (url.pathname === '/_echo_body' && req.method === 'POST') return handleEchoBody(req, res, rec);
  if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
  return sendJson(res, 404, { error: 'not found' });
}

// ---------------------------------------------------------------- main

const httpServer = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error('upstream: handler error:', e);
    if (!res.headersSent) jsonRpcError(res, 500, -32603, 'Internal error');
    else res.destroy();
  });
});

httpServer.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`{"port": ${httpServer.address().port}}\n`);
});

httpServer.on('error', (e) => {
  console.error('upstream: listen failed:', e.message);
  process.exit(1);
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log('stopping on', signal);
  httpServer.close();
  await Promise.allSettled([...transports.values()].map((t) => t.close()));
  httpServer.closeAllConnections();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

if (opts['exit-with-stdin']) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}
