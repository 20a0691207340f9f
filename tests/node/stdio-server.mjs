#!/usr/bin/env node
// A tiny stdio MCP server for the tests of stdio routes, written with the
// official TypeScript SDK's StdioServerTransport (newline-delimited JSON-RPC
// on stdin/stdout; its own log on stderr).
//
//   node tests/node/stdio-server.mjs [--stubborn]
//
// --stubborn: ignores SIGTERM and the end of stdin (the proxy must SIGKILL it).
// See tests/node/README.md for the tools.

import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';

const { values: opts } = parseArgs({ options: { stubborn: { type: 'boolean', default: false } }, strict: true });

const text = (t) => ({ content: [{ type: 'text', text: typeof t === 'string' ? t : JSON.stringify(t) }] });
const grandchildren = [];

const server = new McpServer({ name: 'stdio-test-server', version: '0.0.0' }, { capabilities: { logging: {} } });

server.registerTool('pid', { description: 'This process: pid, ppid, calls so far' }, async () => {
  calls += 1;
  return text({ pid: process.pid, ppid: process.ppid, calls });
});
let calls = 0;

server.registerTool('env', { description: 'The environment this process got' }, async () => text(process.env));

server.registerTool(
  'echo',
  { description: 'Echoes the message', inputSchema: { message: z.string() } },
  async ({ message }) => text(message),
);

server.registerTool(
  'slow',
  {
    description: 'Waits ms milliseconds, sending `steps` progress notifications if asked for',
    inputSchema: { ms: z.number().default(500), steps: z.number().default(3) },
  },
  async ({ ms, steps }, extra) => {
    const token = extra._meta?.progressToken;
    for (let i = 1; i <= steps; i++) {
      await sleep(ms / steps);
      if (token !== undefined) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: steps } });
      }
    }
    return text(`slept ${ms} ms`);
  },
);

server.registerTool(
  'sample',
  { description: 'Asks the client for an LLM completion (sampling/createMessage)', inputSchema: { prompt: z.string() } },
  async ({ prompt }) => {
    const r = await server.server.createMessage({
      messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
      maxTokens: 10,
    });
    return text(`sampled: ${r.content?.text ?? JSON.stringify(r.content)}`);
  },
);

server.registerTool('log', { description: 'Sends a notifications/message, then answers' }, async () => {
  await server.server.sendLoggingMessage({ level: 'info', logger: 'stdio-test', data: 'hello from the log tool' });
  return text('logged');
});

let added = 0;
server.registerTool('add-tool', { description: 'Registers one more tool (the server then sends notifications/tools/list_changed)' }, async () => {
  added += 1;
  server.registerTool(`added-${added}`, { description: 'Added at run time' }, async () => text('added'));
  return text(`added-${added}`);
});

server.registerTool('crash', { description: 'Exits with status 3 before answering' }, async () => {
  process.exit(3);
});

server.registerTool('garbage', { description: 'Writes a line that is not JSON-RPC to stdout' }, async () => {
  process.stdout.write('this is not JSON-RPC\n');
  await sleep(60_000);
  return text('unreachable');
});

server.registerTool(
  'huge',
  { description: 'Writes a line of `bytes` bytes (no newline until the end) to stdout', inputSchema: { bytes: z.number() } },
  async ({ bytes }) => {
    const chunk = 'x'.repeat(1 << 20);
    let left = bytes;
    process.stdout.write('{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"');
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      if (!process.stdout.write(chunk.slice(0, n))) await new Promise((r) => process.stdout.once('drain', r));
      left -= n;
    }
    process.stdout.write('"}}\n');
    await sleep(60_000);
    return text('unreachable');
  },
);

server.registerTool('grandchild', { description: 'Starts `sleep 600` in its process group and returns its pid' }, async () => {
  const c = spawn('sleep', ['600'], { stdio: 'ignore' });
  grandchildren.push(c);
  return text({ pid: c.pid });
});

server.registerTool(
  'stderr',
  { description: 'Writes `lines` lines to stderr', inputSchema: { lines: z.number().default(1) } },
  async ({ lines }) => {
    for (let i = 0; i < lines; i++) process.stderr.write(`stderr line ${i} of ${lines}\n`);
    return text(`wrote ${lines}`);
  },
);

if (opts.stubborn) {
  process.on('SIGTERM', () => console.error('stdio-test-server: SIGTERM ignored'));
  setInterval(() => {}, 1 << 30);
}

console.error(`stdio-test-server: started, pid ${process.pid}`);
await server.connect(new StdioServerTransport());
