// An MCP server that is itself protected by OAuth, for the per-user upstream
// OAuth tests (issue 14): the official TypeScript SDK's authorization server
// router (`mcpAuthRouter`: RFC 8414 metadata, RFC 9728 protected-resource
// metadata, DCR, authorize, token with PKCE) over an in-memory provider, and
// an MCP server (Streamable HTTP, stateless) behind the SDK's
// `requireBearerAuth`. The authorization page approves at once, as a new
// upstream user each time (`u1`, `u2`, …): the tests tell users apart by the
// token and the upstream user a tool call arrives with.
//
//   const up = await startOAuthUpstream({ accessTtl: 3600 });
//   up.mcpUrl             // http://127.0.0.1:<port>/mcp
//   up.expireAccessTokens() / up.refuseRefresh(true) / up.tokens / up.stop()

import { randomBytes } from 'node:crypto';

import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { mcpAuthRouter, getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/sdk/server/auth/router.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { InvalidGrantError, InvalidTokenError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

const token = (prefix) => `${prefix}-${randomBytes(18).toString('base64url')}`;

export async function startOAuthUpstream({ accessTtl = 3600 } = {}) {
  const clients = new Map();
  const codes = new Map(); // code → { client_id, challenge, redirectUri, user, resource }
  const access = new Map(); // token → { user, client_id, expiresAt }
  const refresh = new Map(); // token → { user, client_id }
  let users = 0;
  const state = {
    refuseRefresh: false,
    registrations: 0,
    refreshes: 0,
    /** Every access token issued, in order, with its user. */
    issued: [],
    /** Every bearer token that reached the MCP endpoint. */
    seen: [],
  };

  function issue(user, client_id) {
    const at = token('uat');
    const rt = token('urt');
    const expiresAt = Math.floor(Date.now() / 1000) + accessTtl;
    access.set(at, { user, client_id, expiresAt });
    refresh.set(rt, { user, client_id });
    state.issued.push({ user, token: at });
    return { access_token: at, token_type: 'bearer', expires_in: accessTtl, refresh_token: rt };
  }

  const provider = {
    clientsStore: {
      getClient: async (id) => clients.get(id),
      registerClient: async (c) => {
        state.registrations += 1;
        clients.set(c.client_id, c);
        return c;
      },
    },
    async authorize(client, params, res) {
      const code = token('ucode');
      users += 1;
      codes.set(code, {
        client_id: client.client_id,
        challenge: params.codeChallenge,
        redirectUri: params.redirectUri,
        user: `u${users}`,
        resource: params.resource?.href,
      });
      const to = new URL(params.redirectUri);
      to.searchParams.set('code', code);
      if (params.state) to.searchParams.set('state', params.state);
      res.redirect(302, to.href);
    },
    async challengeForAuthorizationCode(_client, code) {
      const c = codes.get(code);
      if (!c) throw new InvalidGrantError('unknown code');
      return c.challenge;
    },
    async exchangeAuthorizationCode(client, code, _verifier, redirectUri, resource) {
      const c = codes.get(code);
      codes.delete(code);
      if (!c || c.client_id !== client.client_id) throw new InvalidGrantError('unknown code');
      if (redirectUri && redirectUri !== c.redirectUri) throw new InvalidGrantError('redirect_uri');
      if (!resource || resource.href !== mcpUrl) throw new InvalidGrantError(`resource ${resource?.href}`);
      return issue(c.user, client.client_id);
    },
    async exchangeRefreshToken(client, rt) {
      state.refreshes += 1;
      const r = refresh.get(rt);
      if (state.refuseRefresh || !r || r.client_id !== client.client_id) throw new InvalidGrantError('refresh refused');
      refresh.delete(rt); // rotated
      return issue(r.user, client.client_id);
    },
    async verifyAccessToken(t) {
      const a = access.get(t);
      if (!a) throw new InvalidTokenError('unknown token');
      return { token: t, clientId: a.client_id, scopes: [], expiresAt: a.expiresAt, extra: { user: a.user } };
    },
  };

  const app = express();
  const server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  const mcpUrl = `${origin}/mcp`;
  app.use(
    mcpAuthRouter({
      provider,
      issuerUrl: new URL(origin),
      resourceServerUrl: new URL(mcpUrl),
    }),
  );
  const bearer = requireBearerAuth({
    verifier: provider,
    resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(new URL(mcpUrl)),
  });
  app.post('/mcp', bearer, express.json(), async (req, res) => {
    state.seen.push(req.auth.token);
    const mcp = new McpServer({ name: 'oauth-upstream', version: '1.0.0' });
    mcp.registerTool('whoami', { description: 'The upstream user of the token' }, async (extra) => ({
      content: [{ type: 'text', text: JSON.stringify({ user: extra.authInfo?.extra?.user, token: extra.authInfo?.token }) }],
    }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => transport.close());
    await mcp.connect(transport);
    await transport.handleRequest(req, res, req.body);
  });

  return {
    origin,
    mcpUrl,
    state,
    /** Every access token issued so far lapses now (the next request gets 401). */
    expireAccessTokens() {
      const now = Math.floor(Date.now() / 1000);
      for (const a of access.values()) a.expiresAt = now - 1;
    },
    async stop() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}
