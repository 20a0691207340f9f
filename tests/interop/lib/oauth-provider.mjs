// An OAuthClientProvider (see @modelcontextprotocol/sdk dist/esm/client/auth.d.ts)
// for the official TypeScript SDK client, whose "user agent" is chromium:
// redirectToAuthorization() opens the authorization URL in a fresh browser
// context, signs in and clicks Allow, and the loopback catcher receives the code.

import { randomBytes } from 'node:crypto';

import { loginAndConsent } from './browser.mjs';

export class BrowserOAuthProvider {
  /**
   * @param {object} o
   * @param {import('playwright-core').Browser} o.browser
   * @param {Awaited<ReturnType<import('./browser.mjs').startCatcher>>} o.catcher
   * @param {string} o.username
   * @param {string} o.password
   * @param {string} [o.clientName]
   * @param {(page: import('playwright-core').Page) => Promise<void>} [o.signIn]
   * @param {(browser: import('playwright-core').Browser) => Promise<import('playwright-core').BrowserContext>} [o.newContext]
   */
  constructor({ browser, catcher, username, password, clientName = 'Interop SDK Client', signIn, newContext }) {
    this.browser = browser;
    this.catcher = catcher;
    this.username = username;
    this.password = password;
    this.clientName = clientName;
    /** Optional: handles the login page instead of the local form (see loginAndConsent). */
    this.signIn = signIn;
    /** Optional: `(browser) => Promise<BrowserContext>` for each authorization. */
    this.newContext = newContext ?? ((b) => b.newContext());
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._state = undefined;
    /** Every call, for assertions. */
    this.log = { registrations: [], savedTokens: [], authorizationUrls: [], invalidations: [], consentTexts: [] };
    /** Set by redirectToAuthorization: resolves with the catcher's callback record. */
    this.pendingAuthorization = undefined;
  }

  get redirectUrl() {
    return this.catcher.redirectUri;
  }

  get clientMetadata() {
    return {
      client_name: this.clientName,
      redirect_uris: [this.catcher.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this._state = randomBytes(8).toString('base64url');
    return this._state;
  }

  clientInformation() {
    return this._clientInformation;
  }

  saveClientInformation(info) {
    this.log.registrations.push(info);
    this._clientInformation = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this.log.savedTokens.push(tokens);
    this._tokens = tokens;
  }

  saveCodeVerifier(v) {
    this._codeVerifier = v;
  }

  codeVerifier() {
    if (!this._codeVerifier) throw new Error('no code verifier saved');
    return this._codeVerifier;
  }

  invalidateCredentials(scope) {
    this.log.invalidations.push(scope);
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'client') this._clientInformation = undefined;
    if (scope === 'all' || scope === 'verifier') this._codeVerifier = undefined;
  }

  /**
   * Drops the stored refresh token and keeps the access token. A refresh
   * cannot widen a grant (RFC 6749 §6), so a client that must step up to more
   * scopes has to send the user through authorization again; the SDK's
   * auth() only does that when it holds no refresh token.
   */
  forgetRefreshToken() {
    if (this._tokens) {
      const { refresh_token: _dropped, ...rest } = this._tokens;
      this._tokens = rest;
    }
  }

  redirectToAuthorization(authorizationUrl) {
    const url = new URL(authorizationUrl);
    this.log.authorizationUrls.push(url);
    const sentState = url.searchParams.get('state');
    const from = this.catcher.calls.length;
    this.pendingAuthorization = (async () => {
      const ctx = await this.newContext(this.browser);
      try {
        const page = await ctx.newPage();
        await page.goto(url.toString());
        await loginAndConsent(page, {
          username: this.username,
          password: this.password,
          signIn: this.signIn,
          decision: 'Allow',
          // What the user was asked to consent to, for assertions.
          beforeConsent: async (p) => {
            this.log.consentTexts.push(await p.locator('body').innerText());
          },
        });
        const cb = await this.catcher.next({ from });
        return { query: cb.query, sentState };
      } finally {
        await ctx.close();
      }
    })();
    // Do not leave an unhandled rejection if the test never awaits it.
    this.pendingAuthorization.catch(() => {});
  }
}
