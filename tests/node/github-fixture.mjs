// A stand-in for GitHub (github.com's OAuth web flow and the REST API, which
// CI cannot reach) on one loopback origin, answering in GitHub's documented
// shapes:
//
//   GET  /login/oauth/authorize       the web flow's first step (PKCE S256 accepted)
//   POST /login/oauth/access_token    code → user token (JSON with Accept: application/json,
//                                     else form-encoded; errors are 200 with `error`)
//   GET  /user, /user/emails, /user/orgs, /user/teams   the REST API (Bearer or `token` scheme)
//
// A GitHub Enterprise-style `api_url` of http://127.0.0.1:PORT makes a client
// use <origin>/login/oauth/… for the web flow and <origin>/user… for the API,
// so one origin serves both. tests/node/README.md describes it.
//
//   const gh = await startGithubFixture({
//     clients: [{ client_id: 'ghclient', client_secret: 's3cret', redirect_uri: 'http://127.0.0.1:8080/oauth/callback/gh' }],
//     users: { octocat: { name: 'The Octocat', orgs: ['acme'], teams: ['acme/platform'] } },
//   });
//   gh.nextUser = 'octocat';   // who "signs in" at the next authorization

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const DOCS = 'https://docs.github.com';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function ghToken(prefix) {
  const bytes = randomBytes(36);
  let s = prefix;
  for (const b of bytes) s += ALNUM[b % ALNUM.length];
  return s;
}

const eq = (a, b) => {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
};

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A user as the tests describe it → the stored form. */
function normalizeUser(login, u, id) {
  const email = u.email === undefined ? `${login}@users.example.com` : u.email;
  return {
    login,
    id: u.id ?? id,
    name: u.name ?? login,
    email, // the public profile email (may be null)
    emails: u.emails ?? (email ? [{ email, primary: true, verified: true, visibility: 'public' }] : []),
    orgs: [...(u.orgs ?? [])],
    teams: [...(u.teams ?? [])], // "org/slug"
    publicOrgs: [...(u.publicOrgs ?? [])], // memberships visible without read:org
  };
}

/**
 * Starts the fixture. Options:
 * - `clients`: `[{ client_id, client_secret, redirect_uri }]` (the registered
 *   callback URL; a request's redirect_uri must equal it)
 * - `users`: `{ login: { id?, name?, email?, emails?, orgs?, teams?, publicOrgs? } }`,
 *   `teams` as "org/slug"
 * - `orgIds`: optional `{ org: id }`
 * - `port`: default 0
 */
export async function startGithubFixture({ clients = [], users = {}, port = 0 } = {}) {
  let nextId = 1000;
  const userMap = new Map(Object.entries(users).map(([login, u]) => [login, normalizeUser(login, u, nextId++)]));
  const orgIds = new Map();
  const orgId = (org) => {
    if (!orgIds.has(org)) orgIds.set(org, 5000 + orgIds.size);
    return orgIds.get(org);
  };
  const codes = new Map(); // code → { clientId, redirectUri, login, scopes, challenge, expires }
  const tokens = new Map(); // token → { login, scopes, clientId }

  const fixture = {
    url: '',
    port: 0,
    /** The login that the next authorization signs in as (default: the first user). */
    nextUser: Object.keys(users)[0] ?? null,
    /** `deny`: the next authorizations answer error=access_denied (the user clicked Cancel). */
    nextDecision: 'allow',
    /** true: /login/oauth/authorize shows a page with an "Authorize" button; false: redirects at once. */
    interactive: false,
    /** Every request: `{ method, path, query, time, status, auth }` (auth: the token's login or null). */
    requests: [],
    /** The query of each authorization request. */
    authorizationRequests: [],
    /** Each token request: `{ params (without secrets), error }`. */
    tokenRequests: [],
    /** Every code and token handed out (for leak checks). */
    issued: [],

    setUser(login, u) {
      const old = userMap.get(login);
      userMap.set(login, normalizeUser(login, { ...u, id: u.id ?? old?.id }, nextId++));
    },
    /** The user leaves the organisation (and its teams). */
    removeFromOrg(login, org) {
      const u = userMap.get(login);
      if (!u) throw new Error(`no user ${login}`);
      u.orgs = u.orgs.filter((o) => o !== org);
      u.publicOrgs = u.publicOrgs.filter((o) => o !== org);
      u.teams = u.teams.filter((t) => !t.startsWith(`${org}/`));
    },
    removeFromTeam(login, team) {
      const u = userMap.get(login);
      if (!u) throw new Error(`no user ${login}`);
      u.teams = u.teams.filter((t) => t !== team);
    },
    addToTeam(login, team) {
      const u = userMap.get(login);
      if (!u) throw new Error(`no user ${login}`);
      if (!u.teams.includes(team)) u.teams.push(team);
      const org = team.split('/')[0];
      if (!u.orgs.includes(org)) u.orgs.push(org);
    },
    /** The account is gone: its tokens answer 401 Bad credentials. */
    deleteUser(login) {
      userMap.delete(login);
    },
    /** The user revoked the app: every token of theirs answers 401 Bad credentials. */
    revokeTokens(login) {
      for (const [t, rec] of tokens) if (rec.login === login) tokens.delete(t);
    },
    /** The tokens currently valid for `login`. */
    tokensOf(login) {
      return [...tokens].filter(([, r]) => r.login === login).map(([t]) => t);
    },
    /**
     * Makes the fixture stop answering: `refuse` closes the listening socket,
     * `hang` accepts requests and never answers, `error` answers 503.
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
      if (was === 'refuse' && !server.listening) await listen(fixture.port);
    },
    async stop() {
      outage = 'error';
      for (const res of hanging) res.destroy();
      hanging.clear();
      await closeListener();
    },
  };
  let outage = null;
  const hanging = new Set();
  const sockets = new Set();

  function json(res, status, body, headers = {}) {
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'x-github-media-type': 'github.v3; format=json',
      ...headers,
    });
    res.end(JSON.stringify(body));
  }

  function apiError(res, status, message, extra = {}) {
    json(res, status, { message, documentation_url: `${DOCS}/rest`, status: String(status), ...extra });
  }

  function page(res, status, title, body) {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`);
  }

  function redirect(res, location) {
    res.writeHead(302, { location, 'content-type': 'text/html; charset=utf-8' });
    res.end(`<html><body>You are being <a href="${esc(location)}">redirected</a>.</body></html>`);
  }

  // ------------------------------------------------------------ OAuth web flow

  function checkAuthorize(q) {
    const client = clients.find((c) => c.client_id === q.get('client_id'));
    if (!client) return { error: 'The client_id is not known (404 at GitHub).' };
    const redirectUri = q.get('redirect_uri');
    if (!redirectUri) return { error: 'This fixture wants an explicit redirect_uri.' };
    if (client.redirect_uri && redirectUri !== client.redirect_uri) {
      return { error: `The redirect_uri MUST match the registered callback URL for this application (${client.redirect_uri}).` };
    }
    if (!q.get('state')) return { error: 'This fixture wants a state parameter.' };
    const method = q.get('code_challenge_method');
    if (q.get('code_challenge') && method !== 'S256') return { error: 'Only the S256 code challenge method is accepted.' };
    return { client, redirectUri };
  }

  function finishAuthorize(res, q, redirectUri) {
    const back = new URL(redirectUri);
    if (fixture.nextDecision === 'deny') {
      back.searchParams.set('error', 'access_denied');
      back.searchParams.set('error_description', 'The user has denied your application access.');
      back.searchParams.set('error_uri', `${DOCS}/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied`);
      back.searchParams.set('state', q.get('state'));
      return redirect(res, back.toString());
    }
    const login = fixture.nextUser;
    if (!userMap.has(login)) return page(res, 400, 'No such user', `<p>fixture.nextUser ${esc(login)} is not a user</p>`);
    const code = randomBytes(10).toString('hex'); // GitHub codes are 20 hex characters
    codes.set(code, {
      clientId: q.get('client_id'),
      redirectUri,
      login,
      scopes: (q.get('scope') ?? '').split(/[ ,]+/).filter(Boolean),
      challenge: q.get('code_challenge'),
      expires: Date.now() + 10 * 60_000,
    });
    fixture.issued.push(code);
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state'));
    return redirect(res, back.toString());
  }

  function authorize(req, res, u) {
    fixture.authorizationRequests.push(Object.fromEntries(u.searchParams));
    const r = checkAuthorize(u.searchParams);
    if (r.error) return page(res, 400, 'Authorization error', `<p>${esc(r.error)}</p>`);
    if (!fixture.interactive) return finishAuthorize(res, u.searchParams, r.redirectUri);
    const hidden = [...u.searchParams].map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`).join('');
    return page(
      res,
      200,
      `Authorize ${r.client.name ?? r.client.client_id}`,
      `<p>Signed in as <strong>${esc(fixture.nextUser)}</strong>.</p>
<form method="post" action="/login/oauth/authorize">${hidden}<button type="submit" name="authorize" value="1">Authorize</button>
<button type="submit" name="authorize" value="0">Cancel</button></form>`,
    );
  }

  async function authorizeDecision(req, res) {
    const q = new URLSearchParams(await readBody(req));
    const r = checkAuthorize(q);
    if (r.error) return page(res, 400, 'Authorization error', `<p>${esc(r.error)}</p>`);
    if (q.get('authorize') !== '1') {
      const saved = fixture.nextDecision;
      fixture.nextDecision = 'deny';
      try {
        return finishAuthorize(res, q, r.redirectUri);
      } finally {
        fixture.nextDecision = saved;
      }
    }
    return finishAuthorize(res, q, r.redirectUri);
  }

  async function accessToken(req, res, u) {
    const ct = req.headers['content-type'] ?? '';
    const raw = await readBody(req);
    let params;
    if (ct.startsWith('application/json')) {
      try {
        params = new URLSearchParams(Object.entries(JSON.parse(raw)));
      } catch {
        params = new URLSearchParams();
      }
    } else {
      params = new URLSearchParams(raw);
    }
    for (const [k, v] of u.searchParams) if (!params.has(k)) params.set(k, v); // GitHub also reads the query
    const basic = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const [id, secret] = Buffer.from(basic[1], 'base64').toString('utf8').split(':');
      if (!params.has('client_id')) params.set('client_id', decodeURIComponent(id ?? ''));
      if (!params.has('client_secret')) params.set('client_secret', decodeURIComponent(secret ?? ''));
    }
    const wantsJson = (req.headers.accept ?? '').includes('application/json');
    const answer = (body) => {
      if (wantsJson) return json(res, 200, body);
      res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' });
      res.end(new URLSearchParams(body).toString());
    };
    const fail = (error, error_description, anchor) => {
      fixture.tokenRequests.at(-1).error = error;
      answer({
        error,
        error_description,
        error_uri: `${DOCS}/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#${anchor}`,
      });
    };
    fixture.tokenRequests.push({
      params: Object.fromEntries([...params].filter(([k]) => !['client_secret', 'code', 'code_verifier'].includes(k))),
      hasVerifier: params.has('code_verifier'),
      basicAuth: Boolean(basic),
      accept: req.headers.accept ?? null,
      error: null,
    });

    const client = clients.find((c) => c.client_id === params.get('client_id'));
    if (!client || !eq(client.client_secret, params.get('client_secret') ?? '')) {
      return fail('incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.', 'incorrect-client-credentials');
    }
    const code = params.get('code') ?? '';
    const rec = codes.get(code);
    if (!rec || rec.clientId !== client.client_id || rec.expires < Date.now()) {
      return fail('bad_verification_code', 'The code passed is incorrect or expired.', 'bad-verification-code');
    }
    if (params.has('redirect_uri') && params.get('redirect_uri') !== rec.redirectUri) {
      return fail('redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.', 'redirect-uri-mismatch');
    }
    if (rec.challenge) {
      const verifier = params.get('code_verifier') ?? '';
      const computed = createHash('sha256').update(verifier).digest('base64url');
      if (!verifier || !eq(computed, rec.challenge)) {
        codes.delete(code);
        return fail('bad_verification_code', 'The code_verifier does not match the code_challenge.', 'bad-verification-code');
      }
    }
    codes.delete(code); // single use
    const token = ghToken('gho_');
    tokens.set(token, { login: rec.login, scopes: rec.scopes, clientId: client.client_id });
    fixture.issued.push(token);
    return answer({ access_token: token, token_type: 'bearer', scope: rec.scopes.join(',') });
  }

  // ------------------------------------------------------------ REST API

  function bearer(req) {
    const m = /^(?:Bearer|token)\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    return m ? m[1] : null;
  }

  const canReadOrg = (scopes) => scopes.some((s) => ['read:org', 'write:org', 'admin:org', 'user', 'repo'].includes(s));

  function orgJson(org) {
    const api = fixture.url;
    return {
      login: org,
      id: orgId(org),
      node_id: Buffer.from(`O_${org}`).toString('base64url'),
      url: `${api}/orgs/${org}`,
      repos_url: `${api}/orgs/${org}/repos`,
      events_url: `${api}/orgs/${org}/events`,
      hooks_url: `${api}/orgs/${org}/hooks`,
      issues_url: `${api}/orgs/${org}/issues`,
      members_url: `${api}/orgs/${org}/members{/member}`,
      public_members_url: `${api}/orgs/${org}/public_members{/member}`,
      avatar_url: `${api}/avatars/${org}`,
      description: `The ${org} organisation`,
    };
  }

  function userJson(u) {
    const api = fixture.url;
    return {
      login: u.login,
      id: u.id,
      node_id: Buffer.from(`U_${u.login}`).toString('base64url'),
      avatar_url: `${api}/avatars/${u.login}`,
      gravatar_id: '',
      url: `${api}/users/${u.login}`,
      html_url: `${api}/${u.login}`,
      type: 'User',
      site_admin: false,
      name: u.name,
      company: null,
      blog: '',
      location: null,
      email: u.email,
      hireable: null,
      bio: null,
      twitter_username: null,
      public_repos: 2,
      public_gists: 1,
      followers: 20,
      following: 0,
      created_at: '2008-01-14T04:33:35Z',
      updated_at: '2008-01-14T04:33:35Z',
    };
  }

  function teamJson(team, i) {
    const [org, slug] = team.split('/');
    const api = fixture.url;
    const name = slug.replace(/(^|-)(\w)/g, (_, d, c) => (d ? ' ' : '') + c.toUpperCase());
    return {
      id: 7000 + i,
      node_id: Buffer.from(`T_${team}`).toString('base64url'),
      url: `${api}/teams/${7000 + i}`,
      html_url: `${api}/orgs/${org}/teams/${slug}`,
      name,
      slug,
      description: null,
      privacy: 'closed',
      notification_setting: 'notifications_enabled',
      permission: 'pull',
      members_url: `${api}/teams/${7000 + i}/members{/member}`,
      repositories_url: `${api}/teams/${7000 + i}/repos`,
      parent: null,
      members_count: 3,
      repos_count: 1,
      created_at: '2017-07-14T16:53:42Z',
      updated_at: '2017-08-17T12:37:15Z',
      organization: { ...orgJson(org), name: org, type: 'Organization' },
    };
  }

  function api(req, res, u, log) {
    if (!req.headers['user-agent']) {
      // GitHub refuses API requests without a User-Agent.
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n');
      return;
    }
    const token = bearer(req);
    const rec = token ? tokens.get(token) : null;
    const user = rec ? userMap.get(rec.login) : null;
    log.auth = user ? user.login : null;
    if (!token) return apiError(res, 401, 'Requires authentication');
    if (!rec || !user) return apiError(res, 401, 'Bad credentials');
    const headers = { 'x-oauth-scopes': rec.scopes.join(', '), 'x-github-api-version-selected': '2022-11-28' };
    switch (u.pathname) {
      case '/user':
        return json(res, 200, userJson(user), { ...headers, 'x-accepted-oauth-scopes': '' });
      case '/user/emails':
        if (!rec.scopes.some((s) => s === 'user' || s === 'user:email')) return apiError(res, 404, 'Not Found');
        return json(res, 200, user.emails, { ...headers, 'x-accepted-oauth-scopes': 'user, user:email' });
      case '/user/orgs': {
        const orgs = canReadOrg(rec.scopes) ? user.orgs : user.orgs.filter((o) => user.publicOrgs.includes(o));
        return json(res, 200, orgs.map(orgJson), { ...headers, 'x-accepted-oauth-scopes': 'admin:org, read:org, repo, user, write:org' });
      }
      case '/user/teams':
        if (!canReadOrg(rec.scopes)) return apiError(res, 403, 'Resource not accessible by integration');
        return json(res, 200, user.teams.map(teamJson), { ...headers, 'x-accepted-oauth-scopes': 'admin:org, read:org, repo, user, write:org' });
      default:
        return apiError(res, 404, 'Not Found');
    }
  }

  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    const rec = { method: req.method, path: u.pathname, query: u.search, time: Date.now(), status: null, auth: null };
    fixture.requests.push(rec);
    res.once('finish', () => {
      rec.status = res.statusCode;
    });
    if (outage === 'hang') {
      hanging.add(res);
      res.once('close', () => hanging.delete(res));
      return;
    }
    if (outage === 'error') {
      res.writeHead(503, { 'content-type': 'text/html; charset=utf-8' }).end('<h1>Unicorn!</h1><p>No server is currently available to service your request.</p>');
      return;
    }
    try {
      if (u.pathname === '/login/oauth/authorize' && req.method === 'GET') return authorize(req, res, u);
      if (u.pathname === '/login/oauth/authorize' && req.method === 'POST') return await authorizeDecision(req, res);
      if (u.pathname === '/login/oauth/access_token' && req.method === 'POST') return await accessToken(req, res, u);
      if (u.pathname.startsWith('/user') && req.method === 'GET') return api(req, res, u, rec);
      return apiError(res, 404, 'Not Found');
    } catch (e) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(e?.stack ?? e));
    }
  });
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
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
      for (const sock of sockets) sock.destroy();
    });
  }
  fixture.port = await listen(port);
  fixture.url = `http://127.0.0.1:${fixture.port}`;
  return fixture;
}
