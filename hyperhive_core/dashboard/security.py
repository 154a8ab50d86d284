"""Who may use the dashboard, and from where: an access token, a Host allowlist, same-origin writes.

Agents share the host's network (claude needs its API), so they reach 127.0.0.1 too: loopback is
not a boundary here. Every request but the static libraries needs the hive's token: once, in the
URL `hivectl dashboard` prints (`?token=`, swapped at once for an HttpOnly, SameSite=Strict
cookie), or as `Authorization: Bearer` for scripts. The token lives where no sandbox can read it
(the state dir, or a file the operator configured). On top of that:

- the Host header must be one of the dashboard's own names (no DNS rebinding);
- a request another site makes (Sec-Fetch-Site cross-site or same-site: another port of
  127.0.0.1 is the same site) gets nothing but a top-level page load;
- a state-changing request with the cookie must carry the CSRF token the page holds (derived from
  the access token, so another site can never learn it) and come from the dashboard's own origin;
- every response forbids framing and inline scripts (Content-Security-Policy).
"""

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyperhive_core.config import HiveConfig
from hyperhive_core.dashboard.address import LOOPBACK_NAMES, Address
from hyperhive_core.errors import ConfigError

TOKEN_FILE = "dashboard.token"
MIN_TOKEN_CHARS = 16
CSRF_HEADER = "x-hyperhive-csrf"
# How long the browser keeps the login cookie; the token itself outlives daemon restarts.
COOKIE_MAX_AGE_S = 30 * 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Served to anyone who may reach the port: the vendored libraries and our own script and styles.
PUBLIC_PREFIX = "/static/"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # The login URL carries the token: never hand it on to another site.
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
NOT_LOGGED_IN = (
    "this hyperhive dashboard needs its token: on the daemon's host run `hivectl dashboard` and open the "
    "address it prints (it carries the token once; the browser then keeps a cookie)"
)


def _derive(token: str, purpose: bytes) -> str:
    return hmac.new(token.encode(), purpose, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Credentials:
    """The hive's dashboard token and what is derived from it."""

    token: str

    @property
    def session(self) -> str:
        """The login cookie's value (not the token itself: a leaked cookie is not the URL)."""
        return _derive(self.token, b"hyperhive dashboard session")

    @property
    def csrf(self) -> str:
        """What the page sends with every state-changing request; only a logged-in page knows it."""
        return _derive(self.token, b"hyperhive dashboard csrf")

    def matches(self, token: str) -> bool:
        """Whether `token` is the access token (in constant time)."""
        return hmac.compare_digest(token.encode(), self.token.encode())


def load_credentials(config: HiveConfig) -> Credentials:
    """The configured token, or the one kept in the state dir (made once, 0600, on first use).

    Raises:
        ConfigError: the configured file cannot be read, or holds too short a token.
    """
    if config.dashboard_token_file is not None:
        path = config.dashboard_token_file
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the dashboard token file {path}: {exc.strerror or exc}") from exc
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise ConfigError(
                f"the dashboard token in {path} must be one word of at least {MIN_TOKEN_CHARS} characters; "
                "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return Credentials(token)
    return Credentials(_kept_token(config.state_dir / TOKEN_FILE))


def _kept_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
        if len(token) >= MIN_TOKEN_CHARS:
            return token
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot read the dashboard token {path}: {exc.strerror or exc}") from exc
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w") as out:
            out.write(token + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the dashboard token {path}: {exc.strerror or exc}") from exc
    return token


def check_exposure(address: Address, config: HiveConfig) -> None:
    """Refuse to listen off loopback unless the operator chose the token.

    Raises:
        ConfigError: the address is not loopback and no token file is configured.
    """
    if not address.loopback and config.dashboard_token_file is None:
        raise ConfigError(
            f"the dashboard would listen on {address}, off loopback, with no token configured: give "
            "--dashboard-token-file FILE (a secret of at least 16 characters, shared only with the operators; "
            "put TLS in front of it), or listen on 127.0.0.1"
        )


def allowed_hosts(address: Address, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values the dashboard answers: its address, loopback names, the configured ones."""
    hosts = {address.netloc(port).lower()}
    if address.loopback or address.unspecified:
        hosts.update(f"{name}:{port}" for name in LOOPBACK_NAMES)
    for name in extra:
        name = name.strip().lower()
        if name:
            hosts.add(name if ":" in name.removeprefix("[").rpartition("]")[2] else f"{name}:{port}")
    return frozenset(hosts)


def _with_headers(send: Send, *, no_store: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
            headers.extend(SECURITY_HEADERS)
            if no_store and not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


class Guard:
    """ASGI middleware in front of every route: Host, token, cross-site and CSRF checks, headers."""

    def __init__(self, app: ASGIApp, *, credentials: Credentials, hosts: frozenset[str], cookie: str) -> None:
        self._app = app
        self._credentials = credentials
        self._hosts = hosts
        self._cookie = cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self._app(scope, receive, send)
        path: str = scope["path"]
        send = _with_headers(send, no_store=not path.startswith(PUBLIC_PREFIX))
        refusal = self._refusal(scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self._app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        """The answer for a request that may not go on, or None."""
        headers = Headers(scope=scope)
        method: str = scope["method"]
        host = headers.get("host", "").lower()
        if host not in self._hosts:
            return PlainTextResponse(
                f"unknown Host {host!r}: this dashboard answers only to {', '.join(sorted(self._hosts))} "
                "(hivectl serve --dashboard-host NAME adds a name)",
                status_code=421,
            )
        site = headers.get("sec-fetch-site")
        if site in ("cross-site", "same-site") and not (
            method in SAFE_METHODS
            and headers.get("sec-fetch-mode") == "navigate"
            and headers.get("sec-fetch-dest") == "document"
        ):
            # Another site (another port of 127.0.0.1 is the same *site*) may open a page, nothing else.
            return PlainTextResponse("refused: a request from another site", status_code=403)
        if scope["path"].startswith(PUBLIC_PREFIX):
            return None if method in SAFE_METHODS else PlainTextResponse("read-only", status_code=405)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if method in SAFE_METHODS and "token" in query:
            return self._login(scope, query)
        by_cookie = hmac.compare_digest(self._cookie_value(headers).encode(), self._credentials.session.encode())
        by_bearer = self._bearer(headers)
        if not (by_cookie or by_bearer):
            return PlainTextResponse(NOT_LOGGED_IN, status_code=401)
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return PlainTextResponse(f"refused: a request from the origin {origin!r}", status_code=403)
        if not by_bearer:
            if site not in (None, "same-origin"):
                return PlainTextResponse("refused: not from the dashboard's own page", status_code=403)
            if not hmac.compare_digest(headers.get(CSRF_HEADER, "").encode(), self._credentials.csrf.encode()):
                return PlainTextResponse(
                    "refused: the request lacks the page's CSRF token; reload the page", status_code=403
                )
        return None

    def _cookie_value(self, headers: Headers) -> str:
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self._cookie:
                return value
        return ""

    def _bearer(self, headers: Headers) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self._credentials.matches(token.strip())

    def _login(self, scope: Scope, query: dict[str, str]) -> Response:
        if not self._credentials.matches(query["token"]):
            return PlainTextResponse(f"wrong token; {NOT_LOGGED_IN}", status_code=401)
        rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
        # A redirect without the token: it must not stay in the address bar or the history. Only to
        # a path of ours: `//host` would send the browser to another site.
        path = "/" + scope["path"].lstrip("/")
        response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
        response.set_cookie(
            self._cookie,
            self._credentials.session,
            max_age=COOKIE_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="strict",
        )
        return response
