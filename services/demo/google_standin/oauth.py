"""Google's OAuth 2.0 endpoints, as far as the installed-app flow and google-auth use them.

``GET /o/oauth2/auth`` consents at once and redirects back with a code (the "user" is
whoever runs the test); ``POST /token`` answers the authorization-code, refresh-token
and service-account (JWT bearer) grants. :class:`OAuthStore` remembers what it issued so
tests can revoke a refresh token and see ``invalid_grant``, and so the API routes can
refuse tokens it never issued (``open = False``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from services.demo.google_standin.state import GoogleStandinState, google_error

ACCESS_TOKEN_LIFETIME_S = 3599
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class _Grant:
    """What one refresh token (or one authorization code) stands for."""

    client_id: str
    scope: str
    redirect_uri: str = ""
    code_challenge: str = ""
    revoked: bool = False


@dataclass
class OAuthStore:
    """Codes, refresh tokens and access tokens the stand-in issued; thread-safe.

    ``open`` (the default) lets the API routes accept any bearer token, so tests that
    use ``Credentials(token="fake")`` need no OAuth at all; a test of token checking
    sets it to ``False``.
    """

    open: bool = True
    #: The ``sub`` claim of each service-account assertion, in order (delegation).
    jwt_subjects: list[str | None] = field(default_factory=list)
    #: Every access token issued, in order.
    access_tokens: list[str] = field(default_factory=list)
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _refresh: dict[str, _Grant] = field(default_factory=dict)
    #: access token -> the refresh token it came from ("" for service accounts)
    _issued: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke(self, refresh_token: str) -> None:
        """The user (or an admin) revoked this grant: refreshes fail, its tokens stop working."""
        with self._lock:
            grant = self._refresh.setdefault(refresh_token, _Grant("", ""))
            grant.revoked = True

    def revoke_all(self) -> None:
        with self._lock:
            for grant in self._refresh.values():
                grant.revoked = True

    def issue_refresh_token(self, client_id: str, scope: str) -> str:
        """A refresh token as if a person had consented (for tests that skip the flow)."""
        return self.new_refresh_token(_Grant(client_id=client_id, scope=scope))

    def refresh_tokens(self) -> list[str]:
        with self._lock:
            return list(self._refresh)

    def token_ok(self, access_token: str) -> bool:
        """Whether an API should accept this bearer token."""
        with self._lock:
            if self.open:
                return True
            if access_token not in self._issued:
                return False
            refresh_token = self._issued[access_token]
            return not (refresh_token and self._refresh[refresh_token].revoked)

    # -- used by the routes ------------------------------------------------------------

    def new_code(self, grant: _Grant) -> str:
        code = "4/" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = grant
        return code

    def take_code(self, code: str) -> _Grant | None:
        with self._lock:
            return self._codes.pop(code, None)

    def new_refresh_token(self, grant: _Grant) -> str:
        token = "1//" + secrets.token_urlsafe(32)
        with self._lock:
            self._refresh[token] = grant
        return token

    def grant_of(self, refresh_token: str) -> _Grant | None:
        with self._lock:
            return self._refresh.get(refresh_token)

    def new_access_token(self, refresh_token: str = "") -> str:
        token = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            self._issued[token] = refresh_token
            self.access_tokens.append(token)
        return token

    def record_subject(self, subject: str | None) -> None:
        with self._lock:
            self.jwt_subjects.append(subject)


def store_of(state: GoogleStandinState) -> OAuthStore:
    """The OAuth store of ``state`` (made on first use)."""
    store = state.stores.setdefault("oauth", OAuthStore())
    if not isinstance(store, OAuthStore):
        raise TypeError("state.stores['oauth'] is not an OAuthStore")
    return store


def check_bearer(state: GoogleStandinState, request: Request) -> JSONResponse | None:
    """The 401 an API route answers when the request's bearer token is not acceptable."""
    header = request.headers.get("authorization", "")
    token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    if token and store_of(state).token_ok(token):
        return None
    return google_error(
        401,
        "authError",
        message="Request had invalid authentication credentials.",
    )


def _token_error(error: str, description: str, status: int = 400) -> JSONResponse:
    """The OAuth error shape (RFC 6749 §5.2), which google-auth turns into RefreshError."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _token_reply(access_token: str, scope: str, refresh_token: str = "") -> JSONResponse:
    body: dict[str, Any] = {
        "access_token": access_token,
        "expires_in": ACCESS_TOKEN_LIFETIME_S,
        "token_type": "Bearer",
    }
    if scope:
        body["scope"] = scope
    if refresh_token:
        body["refresh_token"] = refresh_token
    return JSONResponse(body)


def _jwt_claims(assertion: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified (the stand-in trusts every key)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _basic_auth_client(header: str) -> str:
    """The client id of HTTP Basic client authentication (RFC 6749 §2.3.1)."""
    if not header.startswith("Basic "):
        return ""
    try:
        decoded = base64.b64decode(header[len("Basic ") :]).decode()
    except ValueError:
        return ""
    return unquote_plus(decoded.partition(":")[0])


def _pkce_ok(challenge: str, verifier: str) -> bool:
    if not challenge:
        return True
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == challenge


def router(state: GoogleStandinState) -> APIRouter:
    store = store_of(state)
    api = APIRouter()

    @api.get("/o/oauth2/auth")
    async def authorize(request: Request) -> Response:
        if (fault := state.fault_response("oauth")) is not None:
            return fault
        params = request.query_params
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not params.get("client_id"):
            return _token_error("invalid_request", "Missing required parameter: redirect_uri")
        code = store.new_code(
            _Grant(
                client_id=params["client_id"],
                scope=params.get("scope", ""),
                redirect_uri=redirect_uri,
                code_challenge=params.get("code_challenge", ""),
            )
        )
        reply = {"code": code, "scope": params.get("scope", "")}
        if "state" in params:
            reply["state"] = params["state"]
        scheme, netloc, path, query, _ = urlsplit(redirect_uri)
        query = f"{query}&{urlencode(reply)}" if query else urlencode(reply)
        return RedirectResponse(urlunsplit((scheme, netloc, path, query, "")), status_code=302)

    @api.post("/token")
    async def token(request: Request) -> Response:
        if (fault := state.fault_response("oauth")) is not None:
            return fault
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        form.setdefault("client_id", _basic_auth_client(request.headers.get("authorization", "")))
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            grant = store.take_code(form.get("code", ""))
            if grant is None or grant.client_id != form.get("client_id"):
                return _token_error("invalid_grant", "Malformed auth code.")
            if not _pkce_ok(grant.code_challenge, form.get("code_verifier", "")):
                return _token_error("invalid_grant", "Invalid code verifier.")
            refresh_token = store.new_refresh_token(grant)
            access_token = store.new_access_token(refresh_token)
            return _token_reply(access_token, grant.scope, refresh_token)
        if grant_type == "refresh_token":
            refresh_token = form.get("refresh_token", "")
            grant = store.grant_of(refresh_token)
            if grant is None:
                return _token_error("invalid_grant", "Bad Request")
            if grant.revoked:
                return _token_error("invalid_grant", "Token has been expired or revoked.")
            return _token_reply(store.new_access_token(refresh_token), grant.scope)
        if grant_type == JWT_BEARER:
            claims = _jwt_claims(form.get("assertion", ""))
            if claims is None:
                return _token_error("invalid_grant", "Invalid JWT Signature.")
            store.record_subject(claims.get("sub"))
            return _token_reply(store.new_access_token(), str(claims.get("scope", "")))
        return _token_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    return api
