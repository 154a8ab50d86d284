"""A real daemon with its dashboard on a free loopback port, and HTTP clients for it (httpx2)."""

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import Daemon, running_daemon
from tests.helpers import hive_config

# Any free port: parallel test runs never fight over one.
ANY_PORT = "127.0.0.1:0"


@dataclass(frozen=True, slots=True)
class Dash:
    """A running daemon and where its dashboard answers."""

    daemon: Daemon
    config: HiveConfig
    url: str
    login: str

    @property
    def token(self) -> str:
        """The access token (from the login URL `hivectl dashboard` prints)."""
        return self.login.partition("?token=")[2]

    @property
    def origin(self) -> str:
        """The dashboard's own origin, as a browser writes it."""
        return self.url.rstrip("/")

    @property
    def host(self) -> str:
        """The Host header a browser sends it."""
        return self.origin.removeprefix("http://")

    def client(self, *, bearer: bool = True, **kwargs: Any) -> httpx2.AsyncClient:
        """An HTTP client for the dashboard; with `bearer`, it sends the token as a script would."""
        headers = {"Authorization": f"Bearer {self.token}"} if bearer else {}
        return httpx2.AsyncClient(base_url=self.url, headers=headers, timeout=20, **kwargs)

    @asynccontextmanager
    async def logged_in(self) -> AsyncGenerator[httpx2.AsyncClient]:
        """A client logged in the way a browser is: the login URL, then only the cookie."""
        async with self.client(bearer=False) as client:
            answer = await client.get(self.login)
            assert answer.status_code == 303, answer.text
            assert client.cookies, "the login sets a cookie"
            yield client


@asynccontextmanager
async def running_dashboard(root: Path, **overrides: object) -> AsyncGenerator[Dash]:
    """A daemon (in this process) serving its dashboard on a free port of 127.0.0.1."""
    config = hive_config(root, **{"dashboard": ANY_PORT, **overrides})
    async with running_daemon(config) as daemon:
        info: dict[str, Any] = json.loads(config.dashboard_info.read_text())
        yield Dash(daemon, config, info["url"], info["login"])


async def sse(response: httpx2.Response) -> AsyncIterator[httpx2.ServerSentEvent]:
    """The events of a `text/event-stream` response, skipping the `retry` preamble."""
    async for event in httpx2.EventSource(response):
        if event.data or event.event != "message":
            yield event
