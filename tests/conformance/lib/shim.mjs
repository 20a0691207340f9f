// The header-injecting shim: a loopback HTTP proxy that stands for "an MCP
// client that already holds an access token". The conformance suite's server
// scenarios do no OAuth; they talk to the shim, which adds
// `Authorization: Bearer <token>` and forwards everything else to the proxy
// unchanged, streaming both ways (SSE events pass as they arrive).
//
// Host and Origin: the suite derives them from the URL it was given (the
// shim's). Where they name the shim they are rewritten to name the proxy, so
// the proxy sees what it would see from a client configured with its own URL;
// any other value (e.g. the DNS-rebinding scenario's `evil.example.com`)
// passes untouched, so the proxy's own Host/Origin checks are what is tested.

import http from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Starts the shim on 127.0.0.1 (free port). `target` is the proxy's origin
 * (`http://127.0.0.1:PORT`); `token()` returns the access token to add.
 * `onRequest` (optional) gets one record per exchange.
 */
export function startShim({ target, token, onRequest = () => {} }) {
  const targetUrl = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const sockets = new Set();
  let self = '';

  const server = http.createServer((req, res) => {
    const started = Date.now();
    const headers = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i];
      const lower = name.toLowerCase();
      const value = req.rawHeaders[i + 1];
      if (HOP_BY_HOP.has(lower) || lower === 'authorization') continue;
      if (lower === 'host' && value === self) {
        headers[name] = targetUrl.host;
      } else if (lower === 'origin' && value === `http://${self}`) {
        headers[name] = targetUrl.origin;
      } else if (headers[name] !== undefined) {
        headers[name] = [headers[name], value].flat();
      } else {
        headers[name] = value;
      }
    }
    headers.Authorization = `Bearer ${token()}`;

    const upstream = http.request(
      {
        host: targetUrl.hostname,
        port: targetUrl.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
        setHost: false,
      },
      (up) => {
        const out = {};
        for (let i = 0; i < up.rawHeaders.length; i += 2) {
          const name = up.rawHeaders[i];
          if (HOP_BY_HOP.has(name.toLowerCase())) continue;
          out[name] = out[name] === undefined ? up.rawHeaders[i + 1] : [out[name], up.rawHeaders[i + 1]].flat();
        }
        res.writeHead(up.statusCode, up.statusMessage, out);
        res.flushHeaders();
        up.on('data', (chunk) => res.write(chunk)); // write each chunk at once: no buffering of SSE events
        up.on('end', () => res.end());
        up.on('error', () => res.destroy());
        onRequest({ method: req.method, path: req.url, status: up.statusCode, ms: Date.now() - started, type: up.headers['content-type'] ?? '' });
      },
    );
    upstream.on('error', (e) => {
      onRequest({ method: req.method, path: req.url, status: 502, ms: Date.now() - started, error: e.message });
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'shim_upstream_error', error_description: e.message }));
      } else {
        res.destroy();
      }
    });
    // A client that goes away closes the request to the proxy in turn.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      self = `127.0.0.1:${port}`;
      resolve({
        port,
        url: `http://${self}`,
        close() {
          for (const s of sockets) s.destroy();
          agent.destroy();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}
