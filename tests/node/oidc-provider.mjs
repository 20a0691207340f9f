// A real OpenID Provider for the tests: panva's `oidc-provider` (OpenID
// Certified), version pinned in package.json, on http://127.0.0.1:<port>.
// Discovery, JWKS, authorization, token and userinfo endpoints are the
// library's own; the tests steer it through the handle returned by
// startOidcProvider (accounts, keys, a tampered ID token, an outage).
// tests/node/README.md describes it.
//
//   import { startOidcProvider } from '../node/oidc-provider.mjs';
//   const op = await startOidcProvider({
//     clients: [{ client_id: 'proxy', client_secret: 's3cret', redirect_uris: ['http://127.0.0.1:8080/oauth/callback/corp'] }],
//     accounts: { alice: { email: 'alice@example.com', email_verified: true, groups: ['staff'], name: 'Alice' } },
//   });
//   op.issuer  // "http://127.0.0.1:43117" (no trailing slash)

import { randomBytes } from 'node:crypto';
import http from 'node:http';

import { SignJWT, exportJWK, exportSPKI, generateKeyPair, importJWK } from 'jose';
import Provider from 'oidc-provider';

// oidc-provider prints development-mode notices (in-memory adapter, dev
// interactions, default helpers) with console.warn/info; they are expected
// here and would only clutter the test output. OIDC_PROVIDER_VERBOSE=1 keeps them.
if (!process.env.OIDC_PROVIDER_VERBOSE) {
  for (const level of ['warn', 'info']) {
    const orig = console[level].bind(console);
    console[level] = (...args) => {
      if (typeof args[0] === 'string' && /^(\x1b\[[0-9;]*m)?oidc-provider (WARNING|NOTICE): /.test(args[0])) return;
      orig(...args);
    };
  }
}

/** A new RSA signing key (private JWK) with a fresh `kid`. */
export async function newSigningKey(kid = `k-${randomBytes(6).toString('hex')}`) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  return { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
}

function publicPart({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub }) {
  return pub;
}

const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

/** Decodes a compact JWS without checking anything: `{ header, payload }`. */
export function decodeJwt(jwt) {
  const [h, p] = String(jwt).split('.');
  return { header: b64json(h), payload: b64json(p) };
}

/** The title of the page a held authorization response shows (interceptCallback). */
export const HELD_TITLE = 'Held by the test';

export const TAMPER_MODES = ['wrong-aud', 'expired', 'wrong-nonce', 'bad-signature', 'wrong-iss', 'alg-none', 'hs256-public-key', 'wrong-azp'];

/**
 * Rewrites an ID token as `mode` says; signs it with `key` (the provider's
 * private JWK) unless the mode is about the signature.
 */
async function tamperIdToken(idToken, mode, key, issuer) {
  const { header, payload } = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const claims = { ...payload };
  switch (mode) {
    case 'wrong-aud':
      claims.aud = 'another-client';
      break;
    case 'wrong-azp':
      claims.azp = 'another-client';
      break;
    case 'expired':
      claims.iat = now - 7200;
      claims.exp = now - 3600; // an hour ago: far beyond any clock-skew allowance
      break;
    case 'wrong-nonce':
      claims.nonce = randomBytes(16).toString('base64url');
      break;
    case 'wrong-iss':
      claims.iss = `${issuer}/other-tenant`;
      break;
    case 'bad-signature': {
      // Same header (same kid), signed with a key the provider never published.
      const other = await importJWK(await newSigningKey(header.kid), header.alg);
      return new SignJWT(claims).setProtectedHeader(header).sign(other);
    }
    case 'alg-none':
      return `${b64({ ...header, alg: 'none' })}.${b64(claims)}.`;
    case 'hs256-public-key': {
      // The classic key-confusion attack: HMAC keyed with the provider's public key.
      const pub = await importJWK(publicPart(key), 'RS256');
      const secret = new TextEncoder().encode(await exportSPKI(pub));
      return new SignJWT(claims).setProtectedHeader({ ...header, alg: 'HS256' }).sign(secret);
    }
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
  return new SignJWT(claims).setProtectedHeader(header).sign(await importJWK(key, header.alg));
}

/**
 * Starts the provider. Options:
 * - `clients`: client metadata for oidc-provider (`client_id`, `client_secret`,
 *   `redirect_uris`, …); defaults added: grant_types authorization_code +
 *   refresh_token, response_types code, `token_endpoint_auth_method`
 *   client_secret_basic.
 * - `accounts`: `{ id: { email, email_verified, groups, name, … } }`; read on
 *   every lookup (setAccount/deleteAccount change it live). The dev login form
 *   takes the account id as `login` and any password.
 * - `port`: default 0 (ephemeral).
 * - `claimsInIdToken` (default true): the ID token carries the scope claims
 *   (email, email_verified, name, groups) too; false keeps oidc-provider's
 *   default (`conformIdTokenClaims`): only `sub` in the ID token, the rest in
 *   userinfo only.
 * - `rotateRefreshTokens` (default true): every refresh answers a new refresh
 *   token and the used one becomes invalid (re-use revokes the grant).
 * - `accessTokenTtl` (seconds, default 3600).
 */
export async function startOidcProvider({
  clients = [],
  accounts = {},
  port = 0,
  claimsInIdToken = true,
  rotateRefreshTokens = true,
  accessTokenTtl = 3600,
} = {}) {
  const accountMap = new Map(Object.entries(accounts).map(([id, c]) => [id, { ...c }]));
  const cookieKeys = [randomBytes(32).toString('base64url')];
  let signingKey = await newSigningKey();
  let tamperMode = null;
  let callbackHook = null;
  let outage = null; // null | 'refuse' | 'hang' | 'error'
  const hanging = new Set();
  const sockets = new Set();

  const handle = {
    issuer: '',
    port: 0,
    /** The private signing keys (JWKs) of the current key set. */
    jwksPrivate: { keys: [] },
    /** Every HTTP request: `{ method, path, query, time, status }`. */
    requests: [],
    /** The query of each authorization request (`/auth`), as an object. */
    authorizationRequests: [],
    /** Each token-endpoint answer: `{ grantType, status, error }`. */
    tokenResponses: [],
    /** Every code, access, refresh and ID token handed out (for leak checks). */
    issued: [],
    /** Every authorization response: the URL the browser was sent back to (a client's redirect URI). */
    callbacks: [],
    provider: null,
  };

  function findAccount(_ctx, id) {
    const claims = accountMap.get(id);
    if (!claims) return undefined;
    return {
      accountId: id,
      // Read at claim time, so a change after login shows at the next refresh/userinfo.
      async claims() {
        const now = accountMap.get(id) ?? claims;
        return { sub: id, ...now };
      },
    };
  }

  function build() {
    const provider = new Provider(handle.issuer, {
      clients: clients.map((c) => ({
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        ...c,
      })),
      jwks: { keys: [signingKey] },
      cookies: { keys: cookieKeys },
      findAccount,
      claims: {
        openid: ['sub'],
        email: ['email', 'email_verified'],
        profile: ['name', 'groups'],
        groups: ['groups'],
      },
      scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
      conformIdTokenClaims: !claimsInIdToken,
      features: {
        devInteractions: { enabled: true },
        userinfo: { enabled: true },
        revocation: { enabled: true },
      },
      pkce: { methods: ['S256'], required: () => true },
      // oidc-provider drops `offline_access` unless the request says
      // prompt=consent (OpenID Connect Core §11), and by default issues refresh
      // tokens only for offline_access. Relying parties that must not force
      // prompt=consent (Entra ID) still get one here, as from Google/Okta/Entra
      // with their own settings.
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      expiresWithSession: async () => false,
      rotateRefreshToken: () => rotateRefreshTokens,
      ttl: {
        AccessToken: accessTokenTtl,
        AuthorizationCode: 60,
        IdToken: 3600,
        RefreshToken: 14 * 24 * 3600,
        Grant: 14 * 24 * 3600,
        Interaction: 3600,
        Session: 14 * 24 * 3600,
      },
      renderError(ctx, out) {
        ctx.type = 'html';
        const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
        ctx.body = `<!doctype html><title>Provider error</title><h1>Provider error</h1><pre>${Object.entries(out)
          .map(([k, v]) => `${esc(k)}: ${esc(v)}`)
          .join('\n')}</pre>`;
      },
    });
    // Authorization responses (the redirect back to a client), seen and
    // possibly changed by the test: see interceptCallback().
    provider.use(async (ctx, next) => {
      await next();
      const location = ctx.status >= 300 && ctx.status < 400 ? ctx.response.get('location') : '';
      if (!location || !isRedirectUri(location)) return;
      handle.callbacks.push(location);
      if (!callbackHook) return;
      const r = await callbackHook(new URL(location));
      if (r === undefined || r === null) return;
      if (r === 'hold') {
        ctx.remove('location');
        ctx.status = 200;
        ctx.type = 'html';
        ctx.body = `<!doctype html><title>${HELD_TITLE}</title><h1>${HELD_TITLE}</h1>`;
        return;
      }
      ctx.redirect(String(r));
    });
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.oidc?.route !== 'token') return;
      const body = ctx.body;
      handle.tokenResponses.push({
        grantType: ctx.oidc.params?.grant_type,
        status: ctx.status,
        error: body && typeof body === 'object' ? body.error : undefined,
        idToken: Boolean(body && typeof body === 'object' && body.id_token),
      });
      if (ctx.status !== 200 || !body || typeof body !== 'object') return;
      for (const k of ['access_token', 'refresh_token', 'id_token']) if (body[k]) handle.issued.push(body[k]);
      if (tamperMode && body.id_token) {
        const id_token = await tamperIdToken(body.id_token, tamperMode, signingKey, handle.issuer);
        handle.issued.push(id_token);
        ctx.body = { ...body, id_token };
      }
    });
    provider.on('authorization_code.saved', (code) => handle.issued.push(code.jti));
    handle.provider = provider;
    handle.jwksPrivate = { keys: [signingKey] };
    return provider;
  }

  function isRedirectUri(location) {
    return clients.some((c) => (c.redirect_uris ?? []).some((r) => location === r || location.startsWith(`${r}?`)));
  }

  let app; // the current provider's request handler; swapped by rotateKeys()

  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    const rec = { method: req.method, path: u.pathname, query: u.search, time: Date.now(), status: null };
    handle.requests.push(rec);
    res.once('finish', () => {
      rec.status = res.statusCode;
    });
    if (u.pathname === '/auth') handle.authorizationRequests.push(Object.fromEntries(u.searchParams));
    if (outage === 'hang') {
      hanging.add(res);
      res.once('close', () => hanging.delete(res));
      return;
    }
    if (outage === 'error') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('Service Unavailable');
      return;
    }
    app(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  function listen(p) {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => {
        server.off('error', reject);
        resolve(server.address().port);
      });
    });
  }

  function closeListener() {
    return new Promise((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
  }

  handle.port = await listen(port);
  handle.issuer = `http://127.0.0.1:${handle.port}`;
  app = build().callback();

  Object.assign(handle, {
    get accounts() {
      return Object.fromEntries(accountMap);
    },
    /** Creates or replaces an account (claims: email, email_verified, groups, name, …). */
    setAccount(id, claims) {
      accountMap.set(id, { ...claims });
    },
    /** Changes some claims of an existing account. */
    updateAccount(id, changes) {
      const cur = accountMap.get(id);
      if (!cur) throw new Error(`no account ${id}`);
      accountMap.set(id, { ...cur, ...changes });
    },
    /** The account is gone: its refresh tokens answer invalid_grant, userinfo 401. */
    deleteAccount(id) {
      accountMap.delete(id);
    },
    /**
     * Replaces the signing key by a new one with a new `kid`: from now on
     * JWKS lists only the new key and ID tokens are signed with it. Sessions,
     * grants, refresh tokens and accounts stay (oidc-provider cannot swap keys
     * in place, so a new Provider instance takes over the same listener and
     * the same in-memory storage).
     */
    async rotateKeys() {
      const old = signingKey.kid;
      signingKey = await newSigningKey();
      app = build().callback();
      return { old, new: signingKey.kid };
    },
    /**
     * `fn(url)` sees each authorization response (the redirect back to the
     * client, `url` a URL) before the browser does, and may answer: nothing
     * (the redirect goes out as it is), a URL (the browser is sent there
     * instead), or 'hold' (the browser gets a page titled HELD_TITLE and never
     * reaches the client; `callbacks` has the URL). It may be async (e.g. take
     * the provider down first). null: no interception.
     */
    interceptCallback(fn) {
      callbackHook = fn;
    },
    /** Every ID token from the token endpoint is rewritten (see TAMPER_MODES); null: none. */
    tamper(mode) {
      if (mode !== null && !TAMPER_MODES.includes(mode)) throw new Error(`unknown tamper mode ${mode}`);
      tamperMode = mode;
    },
    /**
     * Makes the provider stop answering: `refuse` closes the listening socket
     * (connections refused), `hang` accepts requests and never answers,
     * `error` answers 503 to everything.
     */
    async down(mode = 'refuse') {
      if (!['refuse', 'hang', 'error'].includes(mode)) throw new Error(`unknown outage mode ${mode}`);
      outage = mode;
      if (mode === 'refuse') await closeListener();
    },
    /** Answers again (same port). Requests left hanging are dropped. */
    async up() {
      const was = outage;
      outage = null;
      for (const res of hanging) res.destroy();
      hanging.clear();
      if (was === 'refuse' && !server.listening) await listen(handle.port);
    },
    async stop() {
      outage = 'error';
      for (const res of hanging) res.destroy();
      hanging.clear();
      await closeListener();
    },
  });
  return handle;
}
