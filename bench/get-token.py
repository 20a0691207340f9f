#!/usr/bin/env python3
"""Obtains access tokens from mcp-oauth-proxy through the real OAuth flow, without a browser.

DCR (POST /oauth/register) -> GET /oauth/authorize -> 302 /oauth/login -> GET the login
form (hidden csrf/next, mcp_csrf cookie) -> POST /oauth/login -> 303 /oauth/authorize
(mcp_session cookie) -> consent page (hidden csrf/ticket) -> POST /oauth/consent
decision=allow -> 303 to the redirect URI with ?code= -> POST /oauth/token with the
PKCE verifier.

Prints the access token on stdout. With --refreshes N it then uses the refresh token
N times (refresh tokens rotate) and prints each new access token on its own line:
N + 1 distinct access tokens for the same route.

Standard library only.
"""

import argparse
import base64
import hashlib
import html
import http.client
import json
import re
import secrets
import sys
import urllib.parse

REDIRECT = "http://127.0.0.1:9/callback"


class Http:
    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body)
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request(method, path, body=body, headers=h)
        res = conn.getresponse()
        data = res.read().decode("utf-8", "replace")
        for name, value in res.getheaders():
            if name.lower() == "set-cookie":
                k, _, rest = value.partition("=")
                self.cookies[k.strip()] = rest.split(";", 1)[0]
        conn.close()
        return res.status, dict((k.lower(), v) for k, v in res.getheaders()), data


def path_of(location):
    u = urllib.parse.urlsplit(location)
    return u.path + ("?" + u.query if u.query else "")


def hidden(page, name):
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page)
    if not m:
        sys.exit(f"get-token: no hidden input {name!r} in page:\n{page[:500]}")
    return html.unescape(m.group(1))


def expect(cond, what, status, body):
    if not cond:
        sys.exit(f"get-token: {what} (HTTP {status}): {body[:500]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="the proxy's public_url, e.g. http://127.0.0.1:18003")
    ap.add_argument("--resource", required=True, help="the route's URL (token audience)")
    ap.add_argument("--scope", default="")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--refreshes", type=int, default=0)
    a = ap.parse_args()
    web = Http(a.base)

    st, _, body = web.request(
        "POST", "/oauth/register",
        body=json.dumps({
            "client_name": "bench",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }),
        headers={"Content-Type": "application/json"},
    )
    expect(st == 201, "registration failed", st, body)
    client_id = json.loads(body)["client_id"]

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(12)
    q = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "resource": a.resource,
    }
    if a.scope:
        q["scope"] = a.scope
    st, h, body = web.request("GET", "/oauth/authorize?" + urllib.parse.urlencode(q))
    expect(st == 302 and "/oauth/login" in h.get("location", ""), "authorize did not send to login", st, body)

    st, _, page = web.request("GET", path_of(h["location"]))
    expect(st == 200, "login form", st, page)
    st, h, body = web.request("POST", "/oauth/login", body={
        "csrf": hidden(page, "csrf"),
        "next": hidden(page, "next"),
        "username": a.user,
        "password": a.password,
    })
    expect(st == 303, "login failed", st, body)

    st, h, page = web.request("GET", path_of(h["location"]))
    expect(st == 200 and 'name="ticket"' in page, "no consent page", st, page)
    st, h, body = web.request("POST", "/oauth/consent", body={
        "csrf": hidden(page, "csrf"),
        "ticket": hidden(page, "ticket"),
        "decision": "allow",
    })
    expect(st == 303, "consent failed", st, body)
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(h["location"]).query)
    expect("code" in params and params.get("state") == [state], "no code in redirect", st, h["location"])

    def token(form):
        st, _, body = web.request("POST", "/oauth/token", body=form)
        expect(st == 200, "token request failed", st, body)
        return json.loads(body)

    t = token({
        "grant_type": "authorization_code",
        "code": params["code"][0],
        "redirect_uri": REDIRECT,
        "client_id": client_id,
        "code_verifier": verifier,
        "resource": a.resource,
    })
    print(t["access_token"])
    refresh = t.get("refresh_token")
    for _ in range(a.refreshes):
        expect(refresh, "no refresh token issued", 200, json.dumps(t))
        t = token({"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id,
                   "resource": a.resource})
        print(t["access_token"])
        refresh = t.get("refresh_token", refresh)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
