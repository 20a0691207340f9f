// The npm packages of tests/node (the pinned fixtures), imported as ES modules
// from here: tests/interop is not under tests/node, so bare specifiers would
// not resolve. This follows each package's `exports` map with the `import`
// condition, so the SDK's ESM build is used throughout (one UnauthorizedError
// class, one transport).

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { NODE_DIR } from './harness.mjs';

function pick(target) {
  if (typeof target === 'string') return target;
  if (target && typeof target === 'object') {
    for (const cond of ['import', 'node', 'default']) {
      if (cond in target) {
        const r = pick(target[cond]);
        if (r) return r;
      }
    }
  }
  return null;
}

/** Resolves `pkg` + `subpath` (e.g. '@modelcontextprotocol/sdk', './client/index.js') to a file URL. */
export function resolveFixture(pkg, subpath = '.') {
  const dir = path.join(NODE_DIR, 'node_modules', pkg);
  const pj = path.join(dir, 'package.json');
  if (!existsSync(pj)) {
    throw new Error(`${pkg} is not installed in tests/node: run \`npm ci --prefix tests/node\` (./test.sh does)`);
  }
  const { exports } = JSON.parse(readFileSync(pj, 'utf8'));
  let rel = null;
  if (exports && typeof exports === 'object' && !Array.isArray(exports) && Object.keys(exports)[0]?.startsWith('.')) {
    if (subpath in exports) rel = pick(exports[subpath]);
    else {
      for (const [key, target] of Object.entries(exports)) {
        const star = key.indexOf('*');
        if (star === -1) continue;
        const [pre, post] = [key.slice(0, star), key.slice(star + 1)];
        if (subpath.startsWith(pre) && subpath.endsWith(post)) {
          const mid = subpath.slice(pre.length, subpath.length - post.length);
          rel = pick(target)?.replaceAll('*', mid) ?? null;
          break;
        }
      }
    }
  } else if (subpath === '.') {
    rel = pick(exports) ?? 'index.js';
  } else {
    rel = subpath;
  }
  if (!rel) throw new Error(`${pkg} does not export ${subpath}`);
  return pathToFileURL(path.join(dir, rel)).href;
}

export const { chromium } = await import(resolveFixture('playwright-core'));
export const { Client } = await import(resolveFixture('@modelcontextprotocol/sdk', './client/index.js'));
export const { StreamableHTTPClientTransport } = await import(
  resolveFixture('@modelcontextprotocol/sdk', './client/streamableHttp.js')
);
export const { UnauthorizedError } = await import(resolveFixture('@modelcontextprotocol/sdk', './client/auth.js'));
export const { SSEClientTransport } = await import(resolveFixture('@modelcontextprotocol/sdk', './client/sse.js'));
export const { StreamableHTTPError } = await import(resolveFixture('@modelcontextprotocol/sdk', './client/streamableHttp.js'));
export const { McpError, ErrorCode } = await import(resolveFixture('@modelcontextprotocol/sdk', './types.js'));
