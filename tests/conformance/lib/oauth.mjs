// The proxy's OAuth flow over plain fetch, with the user's part (login form,
// consent form) scripted the way a browser with JavaScript disabled would do
// it: follow the redirects by hand, keep the cookies, post the forms back.

import { createHash, randomBytes } from 'node:crypto';

export function pkcePair() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

async function json(res, what) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what}: HTTP ${res.status} with a non-JSON body: ${text.slice(0, 500)}`);
  }
}

export async function discover(issuer) {
  const res = await fetch(`${issuer}/.well-known/oauth-authorization-server`);
  const body = await json(res, 'authorization server metadata');
  if (res.status !== 200) throw new Error(`authorization server metadata: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** RFC 7591 registration of a public client with the given redirect URIs. */
export async function registerClient(metadata, { redirectUris, clientName }) {
  const res = await fetch(metadata.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      client_name: clientName,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }),
  });
  const body = await json(res, 'registration');
  if (res.status !== 201) throw new Error(`registration: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

// ---------------------------------------------------------------------------
// A tiny "browser": a cookie jar and form scraping.

function htmlUnescape(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#x27;|&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** The `name → value` of every `<input type="hidden">` in `html`. */
export function hiddenInputs(html) {
  const out = {};
  for (const m of html.matchAll(/<input\b[^>]*>/gi)) {
    const tag = m[0];
    if (!/\btype\s*=\s*"hidden"/i.test(tag)) continue;
    const name = /\bname\s*=\s*"([^"]*)"/i.exec(tag)?.[1];
    const value = /\bvalue\s*=\s*"([^"]*)"/i.exec(tag)?.[1] ?? '';
    if (name !== undefined) out[htmlUnescape(name)] = htmlUnescape(value);
  }
  return out;
}

/** The readable text of a page (for error messages): no styles, no tags. */
export function pageText(html) {
  return htmlUnescape(
    html
      .replace(/<(style|script)\b[\s\S]*?<\/\1>/gi, ' ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim(),
  ).slice(0, 500);
}

function formAction(html, fallback) {
  const action = /<form\b[^>]*\baction\s*=\s*"([^"]*)"/i.exec(html)?.[1];
  return action ? htmlUnescape(action) : fallback;
}

class Browser {
  constructor(trace) {
    this.cookies = new Map();
    this.trace = trace ?? (() => {});
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async request(url, { method = 'GET', form } = {}) {
    const headers = { accept: 'text/html' };
    if (this.cookies.size) headers.cookie = this.cookieHeader();
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = new URL(url).origin; // what a browser sends with a form post
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text = await res.text();
    const location = res.headers.get('location');
    this.trace(`${method} ${new URL(url).pathname} -> ${res.status}${location ? ` (Location: ${new URL(location, url).pathname})` : ''}`);
    return { res, text, location: location ? new URL(location, url).toString() : null };
  }
}

/**
 * Plays the user agent for one authorization request: opens `authorizationUrl`,
 * signs in on the login form, allows on the consent form, and returns the URL
 * of the final redirect to the client (its redirect URI with `code`, `state`,
 * `iss`), without requesting it.
 */
export async function authorizeAsUser(authorizationUrl, { username, password, trace }) {
  const browser = new Browser(trace);
  const clientOrigin = (u) => !u.startsWith(new URL(authorizationUrl).origin + '/');
  let step = await browser.request(authorizationUrl);
  for (let hops = 0; hops < 10; hops++) {
    const { res, text, location } = step;
    if (res.status >= 300 && res.status < 400) {
      if (!location) throw new Error(`HTTP ${res.status} without a Location header`);
      if (clientOrigin(location)) return location;
      step = await browser.request(location);
      continue;
    }
    if (res.status !== 200) throw new Error(`authorization: HTTP ${res.status} at ${res.url}: ${pageText(text)}`);
    const hidden = hiddenInputs(text);
    const action = new URL(formAction(text, res.url), res.url).toString();
    if (/name="password"/.test(text)) {
      if (!hidden.csrf) throw new Error(`login page without a csrf input: ${pageText(text)}`);
      step = await browser.request(action, { method: 'POST', form: { ...hidden, username, password } });
    } else if (hidden.ticket !== undefined) {
      step = await browser.request(action, { method: 'POST', form: { ...hidden, decision: 'allow' } });
    } else {
      throw new Error(`neither a login nor a consent page at ${res.url}: ${pageText(text)}`);
    }
  }
  throw new Error('authorization: more than 10 steps without reaching the client');
}

/**
 * The whole flow for a public client: authorization request (PKCE S256,
 * `resource`), scripted login and consent, code exchange. Returns the token
 * response.
 */
export async function obtainToken({ metadata, client, redirectUri, resource, username, password, trace }) {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(12).toString('base64url');
  const au = new URL(metadata.authorization_endpoint);
  au.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: redirectUri,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    resource,
  }).toString();
  const back = new URL(await authorizeAsUser(au.toString(), { username, password, trace }));
  if (back.searchParams.get('error')) {
    throw new Error(`authorization failed: ${back.searchParams.get('error')} ${back.searchParams.get('error_description') ?? ''}`);
  }
  if (back.searchParams.get('state') !== state) throw new Error(`state mismatch in ${back}`);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code in the redirect back to the client: ${back.origin}${back.pathname}`);
  const res = await fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: client.client_id,
      resource,
    }).toString(),
  });
  const body = await json(res, 'token request');
  if (res.status !== 200 || !body.access_token) throw new Error(`token request: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}
