"""The dashboard's benchmark rows: a send until painted in a real browser, the daemon with SSE clients
connected against none, and a page load of a large hive.

The browser is Debian's chromium driven by Playwright (as in the tests); the SSE clients are
httpx2 streams in threads of this process, reading every event as a browser tab would.
"""

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from playwright.sync_api import Browser, Page

from tests.core.dashboard._browser import CHROMIUM, chromium

WAIT_MS = 30_000
CHUNK_BYTES = 64 * 1024
# Records when each message the stream inserts is painted: the frame after its insertion.
PAINT_WATCH = """() => {
    window.painted = {};
    new MutationObserver((records) => {
        for (const record of records) for (const node of record.addedNodes) {
            if (!node.id || !node.id.startsWith("m-")) continue;
            const id = node.id.slice(2);
            requestAnimationFrame(() => { window.painted[id] = performance.timeOrigin + performance.now(); });
        }
    }).observe(document.getElementById("stream"), {childList: true});
}"""


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Where a daemon's dashboard answers, from `<run dir>/dashboard.json`."""

    url: str
    login: str

    @property
    def token(self) -> str:
        """The access token."""
        return self.login.partition("?token=")[2]


def dashboard_of(run_dir: Path) -> Dashboard:
    """The dashboard of the daemon on `run_dir`."""
    info: dict[str, Any] = json.loads((run_dir / "dashboard.json").read_text())
    return Dashboard(info["url"], info["login"])


def chromium_installed() -> bool:
    """Whether Debian's chromium is there (`./scripts/test` installs it)."""
    return CHROMIUM.exists()


@contextmanager
def open_browser() -> Generator[Browser]:
    """A headless chromium."""
    if not chromium_installed():
        raise RuntimeError("chromium is not installed: run ./scripts/test once (ensure_chromium)")
    with chromium() as browser:
        yield browser


@contextmanager
def logged_in(browser: Browser, dash: Dashboard) -> Generator[Page]:
    """A page of `browser` logged in to `dash`."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        page.goto(dash.login)
        yield page
    finally:
        context.close()


@dataclass(slots=True)
class SseClients:
    """Clients following the live message stream; `events[i]`: how many events client i read."""

    events: list[int]
    changed: threading.Condition = field(default_factory=threading.Condition)

    def until(self, count: int) -> bool:
        """Wait until every client has read `count` events (False if that takes over `WAIT_MS`)."""
        with self.changed:
            return self.changed.wait_for(lambda: min(self.events, default=count) >= count, WAIT_MS / 1000)


@contextmanager
def sse_clients(dash: Dashboard, n: int) -> Generator[SseClients]:
    """`n` SSE clients on /sse/messages, their streams open before the block runs and closed after it.

    Plain sockets reading every byte, as lean as a client can be: what is measured is the daemon.
    """
    clients = SseClients([0] * n)
    host, _, port = dash.url.removeprefix("http://").rstrip("/").rpartition(":")
    request = (
        f"GET /sse/messages HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {dash.token}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    sockets: list[socket.socket] = []
    for _ in range(n):
        sock = socket.create_connection((host, int(port)), timeout=WAIT_MS / 1000)
        sock.sendall(request)
        head = sock.recv(CHUNK_BYTES)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"an SSE client was refused: {head[:200]!r}")
        sock.settimeout(None)
        sockets.append(sock)

    def follow(i: int) -> None:
        tail = b""
        while chunk := sockets[i].recv(CHUNK_BYTES):
            data = tail + chunk
            with clients.changed:
                clients.events[i] += data.count(b"\nid: ") - tail.count(b"\nid: ")
                clients.changed.notify_all()
            tail = data[-8:]

    threads = [threading.Thread(target=follow, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    try:
        yield clients
    finally:
        for sock in sockets:
            sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(WAIT_MS / 1000)
        for sock in sockets:
            sock.close()


def painted_after_send(page: Page, dash: Dashboard, send: Any, n: int) -> list[float]:
    """Seconds from a `send` call's start until the message is painted on the open messages page.

    `send()` stores one message and returns its id.
    """
    page.goto(dash.url + "messages")
    page.locator("#conn", has_text="live").wait_for()
    page.evaluate(PAINT_WATCH)
    samples: list[float] = []
    for _ in range(n):
        started = time.time() * 1000
        message_id = send()
        # Functions, never strings: the page's CSP forbids eval, which a string predicate would need.
        page.wait_for_function("(id) => window.painted[id] !== undefined", arg=str(message_id))
        painted: float = page.evaluate("(id) => window.painted[id]", str(message_id))
        samples.append((painted - started) / 1000)
    return samples


NAVIGATION = """() => {
    const n = performance.getEntriesByType("navigation")[0];
    return n.loadEventEnd;
}"""


def page_loads(page: Page, dash: Dashboard, last_agent: str, messages: int, n: int) -> tuple[list[float], list[float]]:
    """Seconds from navigation start to the load event (the browser's own navigation timing) of the
    agents view and of the messages view, `n` times each; both render server-side, so by then the
    last agent and the newest messages (up to a page of them) are on the page, which is checked."""
    agents: list[float] = []
    stream: list[float] = []
    shown = min(messages, 200)
    for _ in range(n):
        page.goto(dash.url + "agents")
        page.locator(f"#agent-{last_agent}").wait_for()
        agents.append(page.evaluate(NAVIGATION) / 1000)
        page.goto(dash.url + "messages")
        page.wait_for_function("(n) => document.querySelectorAll('#stream article.msg').length >= n", arg=shown)
        stream.append(page.evaluate(NAVIGATION) / 1000)
    return agents, stream


def seed_messages(state_dir: Path, names: list[str], total: int) -> None:
    """Write `total` answered messages among `names` straight into a new hive database."""
    from hyperhive_core.broker.store import MESSAGE_TABLE, open_engine
    from hyperhive_core.states import MessageState

    engine = open_engine(state_dir / "broker.sqlite")
    start = time.time() - total
    rows: list[dict[str, Any]] = []
    for i in range(total):
        sender, recipient = names[i % len(names)], names[(i * 7 + 1) % len(names)]
        rows.append(
            {
                "sender": sender,
                "recipient": recipient if recipient != sender else "operator",
                "body": f"message {i}: " + "words " * (i % 30),
                "created_at": start + i,
                "reply_to": i if i % 3 else None,
                "state": MessageState.ACKED,
                "delivered_at": start + i,
                "acked_at": start + i,
            }
        )
    with engine.begin() as connection:
        connection.execute(MESSAGE_TABLE.insert(), rows)
    engine.dispose()


def grow_main(state_repo: Path, n: int) -> None:
    """Add `n` commits to main of a running hive's state repo (each rewrites its README only, so the
    reconciler has nothing to do), in one `git fast-import`: the history of a hive that ran long."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"GIT_DIR": str(state_repo), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    now = int(time.time())
    stream = [b"feature done\n"]
    for i in range(n):
        text = f"# a long-lived hive: change {i}\n".encode()
        message = f"readme: change {i}\n\nRequested-By: operator\n".encode()
        stream.append(b"commit refs/hyperhive/bench\n")
        stream.append(f"author operator <operator@hyperhive.invalid> {now} +0000\n".encode())
        stream.append(f"committer operator <operator@hyperhive.invalid> {now} +0000\n".encode())
        stream.append(f"data {len(message)}\n".encode() + message)
        if i == 0:
            stream.append(b"from refs/heads/main^0\n")
        stream.append(f"M 100644 inline README.md\ndata {len(text)}\n".encode() + text + b"\n")
    stream.append(b"done\n")
    old = subprocess.run(["git", "rev-parse", "main"], env=env, check=True, capture_output=True).stdout.strip()
    subprocess.run(["git", "fast-import", "--quiet"], input=b"".join(stream), env=env, check=True)
    new = subprocess.run(["git", "rev-parse", "refs/hyperhive/bench"], env=env, check=True, capture_output=True)
    subprocess.run(["git", "update-ref", "refs/heads/main", new.stdout.strip(), old], env=env, check=True)


def get_ms(client: httpx2.Client, path: str, n: int) -> list[float]:
    """`n` timings of GET `path` (whole answer read), in seconds; each must answer 200."""
    samples: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        answer = client.get(path)
        samples.append(time.perf_counter() - start)
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} answered {answer.status_code}: {answer.text[:200]}")
    return samples
