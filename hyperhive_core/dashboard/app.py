"""The dashboard's routes: pages, partials, the JSON API, and the SSE streams.

Reads come from the hive database (`HiveReader`), the state repo (`StateRepo`, for the history)
and the hive's own views; every action (send, rebuild, kill, suspend, resume, approve, deny) is a
call of the operator's toolset, the very MCP server behind host.sock, so the page and `hivectl`
share one code path, one validation and the same words when refused.
"""

import functools
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError
from sse_starlette import ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hyperhive_core.approvals.repo import CommitInfo, StateRepo
from hyperhive_core.approvals.views import ProposalDetail, ProposalList, ProposalView, Verdict
from hyperhive_core.broker.models import EventRow
from hyperhive_core.dashboard import approvals, history, pages, terminal
from hyperhive_core.dashboard.activity import Activity
from hyperhive_core.dashboard.diffs import MAX_DIFF_CHARS
from hyperhive_core.dashboard.feeds import Entry, EventFeeds, Fetch, Gap, MessageFeed, follow
from hyperhive_core.dashboard.html import Html
from hyperhive_core.dashboard.queries import Event, HiveReader, Message, event_data
from hyperhive_core.dashboard.sse import RETRY_MS, HiveEventStream, StreamCount
from hyperhive_core.dashboard.stats import StatsStore
from hyperhive_core.errors import HiveError, UnknownRevisionError
from hyperhive_core.hive import Hive
from hyperhive_core.mcp.models import AgentInfo, AgentList
from hyperhive_core.names import OPERATOR

STATIC_DIR = Path(__file__).parent / "static"
# The newest messages a page opens with, and the turn events a terminal opens with.
PAGE_MESSAGES = 200
TERMINAL_HISTORY = 500
MAX_API_MESSAGES = 1_000
# Open SSE streams the daemon serves at once; more get 503 and retry.
MAX_STREAMS = 64
STATS_WINDOW_S = 3600
MAX_STATS_WINDOW_S = 6 * 3600
# Every stream opens by telling the browser how soon to reconnect.
RETRY_FRAME = ServerSentEvent(retry=RETRY_MS).encode()
# Principals a filter or a terminal may name: agent names, the manager and the operator.
PRINCIPAL = re.compile(r"[a-z][a-z0-9-]{0,8}|operator")
ACTIONS = {"rebuild": "rebuilt", "kill": "killed", "suspend": "suspended", "resume": "resumed"}
# A commit of the state repo, as the history names it: a full sha.
REV = re.compile(r"[0-9a-f]{40}")


class Refused(Exception):
    """A request the dashboard answers with an error: `status` and words that say what to do."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Context:
    """What the routes work with: the hive, its operator toolset, the reader, feeds and stats."""

    hive: Hive
    operator: MCPServer[Any]
    repo: StateRepo
    reader: HiveReader
    activity: Activity
    stats: StatsStore
    messages: MessageFeed
    events: EventFeeds
    csrf: str
    stop: anyio.Event
    streams: StreamCount = field(default_factory=lambda: StreamCount(MAX_STREAMS))


def _message_entry(message: Message) -> Entry:
    return Entry.of(message.id, (message.sender, message.recipient), pages.message_item(message), event="msg")


def _event_entry(event: Event) -> Entry:
    return Entry.of(event.id, (event.agent,), terminal.line(event.created_at, event.data), event="line")


def event_row_entry(row: EventRow) -> Entry:
    """A turn event as the event feed reads it from the hive's event log."""
    return _event_entry(Event(row.id or 0, row.agent, row.created_at, event_data(row.data)))


def message_fetch(reader: HiveReader) -> Fetch:
    """Messages after an id, rendered for the stream (for the feed and for replays)."""

    async def fetch(after: int, limit: int, agent: str | None) -> list[Entry]:
        rows = await reader.run(functools.partial(reader.messages_after, after, limit=limit, agent=agent))
        return [_message_entry(m) for m in rows]

    return fetch


def _digits(text: str) -> bool:
    """Whether `text` is a whole number in ASCII digits (`str.isdigit` takes "²" too)."""
    return text.isascii() and text.isdigit()


def _int(request: Request, name: str, default: int | None, *, low: int = 0, high: int = 2**63 - 1) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not _digits(text) or not low <= int(text) <= high:
        raise Refused(f"{name} must be a whole number from {low} to {high} (got {text[:40]!r})")
    return int(text)


def _principal(text: str | None) -> str | None:
    if not text:
        return None
    if not PRINCIPAL.fullmatch(text):
        raise Refused(f"no agent can be named {text[:40]!r}: names are lowercase letters, digits and '-'")
    return text


def _structured(result: object) -> dict[str, Any]:
    if not isinstance(result, CallToolResult):
        raise Refused("the operator toolset did not answer", status=500)
    if result.is_error:
        words = " ".join(c.text for c in result.content if isinstance(c, TextContent))
        raise Refused(words or "refused", status=409)
    return dict(result.structured_content or {})


class Dashboard:
    """The routes, bound to one hive."""

    def __init__(self, context: Context) -> None:
        self.c = context

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call the operator's tool, as `hivectl` would over host.sock; a refusal becomes `Refused`."""
        try:
            return _structured(await self.c.operator.call_tool(tool, arguments))
        except ToolError as exc:
            raise Refused(str(exc), status=409) from exc

    async def agents(self) -> list[AgentInfo]:
        """The hive as `hivectl list` shows it (the operator's `list_agents`)."""
        try:
            return AgentList.model_validate(await self.call("list_agents", {})).agents
        except ValidationError as exc:
            raise Refused(f"list_agents answered in an unexpected shape: {exc}", status=500) from exc

    def page(self, *, title: str, view: str, content: Html, head: Html = pages.EMPTY) -> HTMLResponse:
        """A whole page."""
        return HTMLResponse(pages.layout(title=title, view=view, csrf=self.c.csrf, content=content, head=head))

    # pages

    async def index(self, request: Request) -> Response:
        return RedirectResponse("/agents", status_code=303)

    @property
    def here(self) -> str | None:
        """This daemon's host in a hive of several hosts (a shared database); None on one host."""
        directory = self.c.hive.directory
        return directory.host if directory is not None else None

    async def agents_body(self) -> tuple[Html, int]:
        agents = await self.agents()
        activity = self.c.activity
        await activity.refresh()
        here = self.here
        rows = [
            pages.agent_row(a, sent=activity.sent.get(a.name, 0), last_at=activity.last_at.get(a.name), here=here)
            for a in agents
        ]
        return pages.agents_body(rows, hosts=here is not None), len(agents)

    async def agents_page(self, request: Request) -> Response:
        body, count = await self.agents_body()
        content = pages.agents_view(body, count, hosts=self.here is not None)
        return self.page(title="Agents", view="agents", content=content)

    async def agents_partial(self, request: Request) -> Response:
        body, _ = await self.agents_body()
        return HTMLResponse(body)

    async def messages_page(self, request: Request) -> Response:
        agent = _principal(request.query_params.get("agent"))
        reader = self.c.reader
        messages = await reader.run(functools.partial(reader.latest_messages, limit=PAGE_MESSAGES, agent=agent))
        # The stream replays from here what the page does not show yet (with the same filter).
        last_id = max((m.id for m in messages), default=0)
        names = [OPERATOR, *self.c.hive.agent_names]
        if agent is not None and agent not in names:
            names.append(agent)
        content = pages.messages_view(messages, agents=names, agent=agent, last_id=last_id)
        return self.page(title="Messages", view="messages", content=content)

    async def thread_partial(self, request: Request) -> Response:
        message_id = int(request.path_params["id"])
        reader = self.c.reader
        thread = await reader.run(functools.partial(reader.thread, message_id))
        return HTMLResponse(pages.thread_view(thread, message_id), status_code=200 if thread else 404)

    async def terminal_page(self, request: Request) -> Response:
        name = _principal(request.path_params.get("name"))
        agents = await self.agents()
        chosen = next((a for a in agents if a.name == name), None)
        if name is not None and chosen is None:
            raise Refused(f"no agent named {name!r} in the hive", status=404)
        content = pages.terminal_view(chosen, [a.name for a in agents])
        head = pages.TERMINAL_HEAD if chosen is not None else pages.EMPTY
        return self.page(title=name or "Terminal", view="terminal", content=content, head=head)

    async def stats_page(self, request: Request) -> Response:
        return self.page(title="Stats", view="stats", content=pages.stats_view(STATS_WINDOW_S), head=pages.STATS_HEAD)

    # the JSON API

    async def api_agents(self, request: Request) -> Response:
        agents = await self.agents()
        activity = self.c.activity
        await activity.refresh()
        rows = [
            {
                **a.model_dump(mode="json"),
                "sent": activity.sent.get(a.name, 0),
                "received": activity.received.get(a.name, 0),
                "last_active_at": activity.last_at.get(a.name),
            }
            for a in agents
        ]
        return JSONResponse({"agents": rows})

    async def api_messages(self, request: Request) -> Response:
        agent = _principal(request.query_params.get("agent"))
        after = _int(request, "after", None)
        limit = _int(request, "limit", PAGE_MESSAGES, low=1, high=MAX_API_MESSAGES) or PAGE_MESSAGES
        reader = self.c.reader
        if after is None:
            rows = await reader.run(functools.partial(reader.latest_messages, limit=limit, agent=agent))
        else:
            rows = await reader.run(functools.partial(reader.messages_after, after, limit=limit, agent=agent))
        return JSONResponse(
            {
                "messages": [
                    {
                        "id": m.id,
                        "sender": m.sender,
                        "recipient": m.recipient,
                        "body": m.body,
                        "created_at": m.created_at,
                        "reply_to": m.reply_to,
                        "state": m.state.value,
                    }
                    for m in rows
                ]
            }
        )

    async def api_stats(self, request: Request) -> Response:
        window = _int(request, "window_s", STATS_WINDOW_S, low=60, high=MAX_STATS_WINDOW_S) or STATS_WINDOW_S
        since = time.time() - window
        data = await anyio.to_thread.run_sync(functools.partial(self.c.stats.window, since))
        return JSONResponse(data)

    async def _form(self, request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                value: Any = await request.json()
            except ValueError as exc:
                raise Refused(f"the body is not JSON: {exc}") from exc
            if not isinstance(value, dict):
                raise Refused("the body must be a JSON object")
            return dict(value)  # pyright: ignore[reportUnknownArgumentType]  # JSON
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def api_send(self, request: Request) -> Response:
        fields = await self._form(request)
        arguments: dict[str, Any] = {"to": fields.get("to", ""), "body": fields.get("body", "")}
        reply_to = fields.get("reply_to")
        if reply_to not in (None, ""):
            # A form sends text; anything else goes to the tool as it came, for its schema to judge.
            arguments["reply_to"] = int(reply_to) if isinstance(reply_to, str) and _digits(reply_to) else reply_to
        receipt = await self.call("send", arguments)
        return self.outcome(request, f"sent #{receipt.get('id')} to {receipt.get('recipient')}", receipt)

    async def api_action(self, request: Request) -> Response:
        name, verb = request.path_params["name"], request.path_params["verb"]
        if verb not in ACTIONS:
            raise Refused(f"unknown action {verb!r}; the dashboard can {', '.join(ACTIONS)}", status=404)
        result = await self.call(verb, {"name": name})
        return self.outcome(request, f"{name} {ACTIONS[verb]}", result)

    # approvals

    async def proposals(self, state: str, limit: int) -> list[ProposalView]:
        """The operator's `approvals` tool: proposals in `state`, newest first."""
        answer = await self.call("approvals", {"state": state, "limit": limit})
        try:
            return ProposalList.model_validate(answer).proposals
        except ValidationError as exc:
            raise Refused(f"approvals answered in an unexpected shape: {exc}", status=500) from exc

    async def proposal(self, proposal: int) -> ProposalDetail:
        """The operator's `approval` tool: one proposal with its diff and plan."""
        answer = await self.call("approval", {"proposal": proposal})
        try:
            return ProposalDetail.model_validate(answer)
        except ValidationError as exc:
            raise Refused(f"approval answered in an unexpected shape: {exc}", status=500) from exc

    async def approvals_lists(self) -> tuple[list[ProposalView], list[ProposalView]]:
        pending = await self.proposals("pending", approvals.MAX_PENDING)
        decided = await self.proposals("decided", approvals.MAX_DECIDED)
        return pending, decided

    async def approvals_body(self) -> Html:
        return approvals.approvals_body(*await self.approvals_lists())

    async def approvals_page(self, request: Request) -> Response:
        content = approvals.approvals_view(await self.approvals_body())
        return self.page(title="Approvals", view="approvals", content=content)

    async def approvals_partial(self, request: Request) -> Response:
        return HTMLResponse(await self.approvals_body())

    async def proposal_partial(self, request: Request) -> Response:
        return HTMLResponse(approvals.proposal_detail(await self.proposal(int(request.path_params["id"]))))

    async def approvals_watch(self, request: Request) -> Response:
        """204 while the proposals stand as the page shows them; otherwise a cue to refresh."""
        seen = request.query_params.get("seen", "")
        if approvals.fingerprint(*await self.approvals_lists()) == seen:
            return Response(status_code=204)
        return Response(status_code=200, headers={"HX-Trigger": "approvals-changed"})

    async def api_approvals(self, request: Request) -> Response:
        pending, decided = await self.approvals_lists()
        return JSONResponse(
            {
                "pending": [p.model_dump(mode="json") for p in pending],
                "decided": [p.model_dump(mode="json") for p in decided],
            }
        )

    async def api_approval(self, request: Request) -> Response:
        return JSONResponse((await self.proposal(int(request.path_params["id"]))).model_dump(mode="json"))

    async def api_verdict(self, request: Request) -> Response:
        proposal, verb = int(request.path_params["id"]), request.path_params["verb"]
        if verb == "approve":
            answer = await self.call("approve", {"proposal": proposal})
        elif verb == "deny":
            reason = (await self._form(request)).get("reason", "")
            if not isinstance(reason, str) or not reason.strip():
                raise Refused("a denial needs a reason: the proposer is told it")
            answer = await self.call("deny", {"proposal": proposal, "reason": reason.strip()})
        else:
            raise Refused(f"unknown verdict {verb!r}; the dashboard can approve or deny", status=404)
        try:
            verdict = Verdict.model_validate(answer)
        except ValidationError as exc:
            raise Refused(f"{verb} answered in an unexpected shape: {exc}", status=500) from exc
        p = verdict.proposal
        return self.outcome(request, f"proposal {p.id} ({p.summary}): {p.state.value}", answer)

    # history

    async def _log(self, request: Request) -> tuple[int, int, list[CommitInfo]]:
        """The page asked for, main's commit count, and that page of commits (newest first)."""
        page = _int(request, "page", 1, low=1, high=10**9) or 1
        try:
            total = await self.c.repo.count()
            commits = await self.c.repo.log(skip=(page - 1) * history.PER_PAGE, limit=history.PER_PAGE)
        except HiveError as exc:
            raise Refused(str(exc), status=503) from exc
        return page, total, commits

    async def history_page(self, request: Request) -> Response:
        page, total, commits = await self._log(request)
        content = history.history_view(commits, total=total, page=page, repo=str(self.c.repo.path))
        return self.page(title="History", view="history", content=content)

    async def _commit(self, request: Request) -> tuple[CommitInfo, str, bool]:
        rev = request.path_params["rev"]
        if not REV.fullmatch(rev):
            raise Refused(f"a commit is named by its whole sha (40 hex digits), not {rev[:60]!r}")
        try:
            commit = await self.c.repo.commit_info(rev)
            diff, cut = await self.c.repo.commit_diff(rev, max_bytes=MAX_DIFF_CHARS)
        except UnknownRevisionError as exc:
            raise Refused(str(exc), status=404) from exc
        except HiveError as exc:
            raise Refused(str(exc), status=503) from exc
        return commit, diff, cut

    async def commit_partial(self, request: Request) -> Response:
        commit, diff, cut = await self._commit(request)
        return HTMLResponse(history.commit_detail(commit, diff, cut=cut))

    async def api_history(self, request: Request) -> Response:
        page, total, commits = await self._log(request)
        return JSONResponse(
            {
                "total": total,
                "page": page,
                "per_page": history.PER_PAGE,
                "commits": [
                    {
                        "rev": c.rev,
                        "parents": list(c.parents),
                        "author": c.author,
                        "email": c.email,
                        "at": c.at,
                        "subject": c.subject,
                        "message": c.message,
                        "trailers": c.trailers,
                        "merged_author": c.merged_author,
                    }
                    for c in commits
                ],
            }
        )

    async def api_commit(self, request: Request) -> Response:
        commit, diff, cut = await self._commit(request)
        return JSONResponse({"rev": commit.rev, "message": commit.message, "diff": diff, "cut": cut})

    def outcome(self, request: Request, text: str, result: dict[str, Any]) -> Response:
        """A done action: a notice for the page (and a cue to refresh the agents), JSON for scripts."""
        if request.headers.get("hx-request") == "true":
            return HTMLResponse(pages.notice(text), headers={"HX-Trigger": "hive-changed"})
        return JSONResponse({"ok": True, "result": result})

    # SSE

    def _cursor(self, request: Request) -> int | None:
        header = request.headers.get("last-event-id", "")
        if _digits(header):
            return int(header)
        return _int(request, "after", None)

    def _stream(self, frames: AsyncGenerator[bytes]) -> Response:
        if self.c.streams.full:
            raise Refused(f"the dashboard already serves {MAX_STREAMS} live streams; try again later", status=503)

        async def framed() -> AsyncGenerator[bytes]:
            try:
                yield RETRY_FRAME
                async for frame in frames:
                    yield frame
            finally:
                await frames.aclose()

        return HiveEventStream(framed(), stop=self.c.stop, count=self.c.streams)

    async def sse_messages(self, request: Request) -> Response:
        agent = _principal(request.query_params.get("agent"))
        cursor = self._cursor(request)
        if cursor is None:
            cursor = await self.c.reader.run(self.c.reader.last_message_id)
        return self._stream(_frames(follow(self.c.messages, message_fetch(self.c.reader), cursor=cursor, agent=agent)))

    async def sse_terminal(self, request: Request) -> Response:
        name = _principal(request.path_params["name"]) or ""
        local = name in self.c.hive.agent_names
        # Another host's agent (a shared database): its turn events are in the database too.
        if not local and name not in {a.name for a in await self.agents()}:
            raise Refused(f"no agent named {name!r} in the hive", status=404)
        cursor = self._cursor(request)
        reader = self.c.reader

        async def fetch(after: int, limit: int, _agent: str | None) -> list[Entry]:
            rows = await reader.run(functools.partial(reader.events_after, name, after, limit=limit))
            return [_event_entry(e) for e in rows]

        async def frames() -> AsyncGenerator[bytes]:
            start = cursor
            if start is None:  # a terminal just opened: the recent history first
                history = await reader.run(functools.partial(reader.latest_events, name, limit=TERMINAL_HISTORY))
                if history:
                    yield b"".join(_event_entry(e).frame for e in history)
                start = history[-1].id if history else 0
            feed = await self.c.events.feed(name, remote=not local)
            async for frame in _frames(follow(feed, fetch, cursor=start)):
                yield frame

        return self._stream(frames())


async def _frames(items: AsyncGenerator[list[Entry] | Gap]) -> AsyncGenerator[bytes]:
    """What a stream sends: each run of entries in one write; a gap tells the page to reload, and ends it."""
    try:
        async for item in items:
            if isinstance(item, Gap):
                yield ServerSentEvent(str(item.skipped), event="gap").encode()
                return
            yield b"".join(entry.frame for entry in item)
    finally:
        await items.aclose()


Endpoint = Callable[[Request], Awaitable[Response]]


def _handle(method: Endpoint) -> Endpoint:
    """Wrap a route so `Refused` becomes its status with words: a notice for htmx, JSON or text otherwise."""

    async def route(request: Request) -> Response:
        try:
            return await method(request)
        except Refused as exc:
            if request.headers.get("hx-request") == "true":
                return HTMLResponse(pages.notice(str(exc), ok=False), status_code=exc.status)
            if request.url.path.startswith("/api/"):
                return JSONResponse({"ok": False, "error": str(exc)}, status_code=exc.status)
            return Response(str(exc), status_code=exc.status, media_type="text/plain; charset=utf-8")

    return route


def build_app(context: Context) -> Starlette:
    """The dashboard's ASGI app (wrap it in `security.Guard` before serving it)."""
    d = Dashboard(context)
    routes = [
        Route("/", _handle(d.index)),
        Route("/agents", _handle(d.agents_page)),
        Route("/partials/agents", _handle(d.agents_partial)),
        Route("/messages", _handle(d.messages_page)),
        Route("/partials/thread/{id:int}", _handle(d.thread_partial)),
        Route("/terminal", _handle(d.terminal_page)),
        Route("/terminal/{name}", _handle(d.terminal_page)),
        Route("/stats", _handle(d.stats_page)),
        Route("/approvals", _handle(d.approvals_page)),
        Route("/partials/approvals", _handle(d.approvals_partial)),
        Route("/partials/approvals/watch", _handle(d.approvals_watch)),
        Route("/partials/approvals/{id:int}", _handle(d.proposal_partial)),
        Route("/history", _handle(d.history_page)),
        Route("/partials/commit/{rev}", _handle(d.commit_partial)),
        Route("/api/agents", _handle(d.api_agents)),
        Route("/api/messages", _handle(d.api_messages)),
        Route("/api/stats", _handle(d.api_stats)),
        Route("/api/send", _handle(d.api_send), methods=["POST"]),
        Route("/api/agents/{name}/{verb}", _handle(d.api_action), methods=["POST"]),
        Route("/api/approvals", _handle(d.api_approvals)),
        Route("/api/approvals/{id:int}", _handle(d.api_approval)),
        Route("/api/approvals/{id:int}/{verb}", _handle(d.api_verdict), methods=["POST"]),
        Route("/api/history", _handle(d.api_history)),
        Route("/api/history/{rev}", _handle(d.api_commit)),
        Route("/sse/messages", _handle(d.sse_messages)),
        Route("/sse/terminal/{name}", _handle(d.sse_terminal)),
        Mount("/static", StaticFiles(directory=STATIC_DIR)),
    ]
    return Starlette(routes=routes)
