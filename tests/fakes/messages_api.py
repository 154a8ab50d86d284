"""A fake Anthropic Messages API on 127.0.0.1, for driving the real claude-code in tests and benchmarks.

claude-code, pointed here by `ANTHROPIC_BASE_URL` in its `settings.json` `env`, calls only
`POST /v1/messages?beta=true` with `stream: true` and reads server-sent events: `message_start`,
`content_block_start`, `content_block_delta` (`text_delta`, `input_json_delta`),
`content_block_stop`, `message_delta` (stop reason, usage), `message_stop`. This server speaks
that much HTTP/1.1 (keep-alive, chunked responses) and nothing more.

What the "model" answers is scripted per test: a `Model` is a function from the request (the
whole conversation claude sent) to a `Reply`: a `Turn` of text and tool_use blocks, an `ApiError`
(401, 429, 529, ...), a `Stall` (the stream opens and never goes on: a hung model) or a `Drop`
(the connection closes mid-stream). `queue()` puts replies in front of the model for the next
requests. Every request is kept, with the times it arrived and was answered.
"""

import json
import re
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

MESSAGES_PATH = "/v1/messages"
MAX_HEAD_BYTES = 64 * 1024
DUMMY_KEY = "sk-ant-fake-0123456789abcdef"
SEND = "mcp__hive__send"
TOOL_SEARCH = "ToolSearch"
# The prompt's message blocks (hyperhive_agent/prompt.py): `message <id> from <sender>:`, body indented.
MESSAGE_HEADER = re.compile(r"^message (\d+) from (\S+?)(?: \(reply_to \d+\))?:$")
BODY_INDENT = "    "
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    529: "Overloaded",
}

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Text:
    """A text block the model writes."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool call the model makes, e.g. `ToolUse("mcp__hive__send", {"to": "operator", "body": "hi"})`."""

    name: str
    input: Json


@dataclass(frozen=True, slots=True)
class Turn:
    """One model response: its blocks in order; it stops for tool use when any block is a tool call."""

    blocks: tuple[Text | ToolUse, ...]
    input_tokens: int = 100
    output_tokens: int = 20

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"


@dataclass(frozen=True, slots=True)
class ApiError:
    """An HTTP error answer with the API's error body, e.g. `ApiError(529)`."""

    status: int
    message: str = "scripted error"
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Stall:
    """The stream opens (`message_start`) and nothing follows until claude gives up or is killed."""


@dataclass(frozen=True, slots=True)
class Drop:
    """The stream opens, starts a text block, and the connection closes without finishing it."""


Reply = Turn | ApiError | Stall | Drop


def say(text: str) -> Turn:
    """A turn that only writes `text`."""
    return Turn((Text(text),))


def call(*uses: ToolUse, text: str = "") -> Turn:
    """A turn that calls tools (after writing `text`, when given)."""
    return Turn(((Text(text),) if text else ()) + uses)


def send(to: str, body: str, reply_to: int | None = None) -> ToolUse:
    """A call of the hive's send tool, as claude names it."""
    arguments: Json = {"to": to, "body": body}
    if reply_to is not None:
        arguments["reply_to"] = reply_to
    return ToolUse(SEND, arguments)


@dataclass(frozen=True, slots=True)
class HiveMessage:
    """A message block of a turn's prompt: `message <id> from <sender>:` and its body."""

    id: int
    sender: str
    body: str


@dataclass
class ApiRequest:
    """One request claude made, and when it came and was answered (`time.time()`)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Json
    received_at: float
    answered_at: float | None = None
    reply: Reply | None = None

    @property
    def messages(self) -> list[Json]:
        return cast(list[Json], self.body.get("messages", []))

    @property
    def tool_names(self) -> list[str]:
        """The tools offered to the model in this request, by name."""
        return [str(t.get("name")) for t in cast(list[Json], self.body.get("tools", []))]

    @property
    def system_text(self) -> str:
        """The system prompt's text (claude sends a list of text blocks)."""
        system = self.body.get("system", "")
        if isinstance(system, str):
            return system
        return "\n".join(str(b.get("text", "")) for b in cast(list[Json], system))

    @property
    def context_text(self) -> str:
        """All the text the model is given: the system prompt and every text block of the conversation.

        claude puts some of its context (the MCP servers' instructions among it) in mid-conversation
        system messages, not in `system`.
        """
        texts = [self.system_text]
        for message in self.messages:
            texts += [str(b.get("text", "")) for b in _blocks(message) if b.get("type") == "text"]
        return "\n".join(texts)

    @property
    def api_key(self) -> str:
        return self.headers.get("x-api-key", "")

    @property
    def answers_tools(self) -> bool:
        """Whether the last message carries tool results (the model is to go on after its tool calls)."""
        return bool(self.tool_results(-1))

    def tool_results(self, index: int) -> list[Json]:
        """The tool_result blocks of message `index`."""
        if not self.messages:
            return []
        return [b for b in _blocks(self.messages[index]) if b.get("type") == "tool_result"]

    def prompt(self) -> str:
        """The text of the latest user message that is not only tool results: this turn's prompt."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            blocks = _blocks(message)
            if any(b.get("type") == "tool_result" for b in blocks):
                continue
            texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
            # claude adds its own <system-reminder> blocks next to the prompt it was given
            return "\n".join(t for t in texts if not t.startswith("<system-reminder>"))
        return ""

    def last_tool_uses(self) -> list[Json]:
        """The tool calls of the model's last response in the conversation."""
        for message in reversed(self.messages):
            if message.get("role") == "assistant":
                return [b for b in _blocks(message) if b.get("type") == "tool_use"]
        return []

    def transcript(self) -> str:
        """Every text and tool result in the conversation, as one string (for what the model has seen)."""
        return json.dumps(self.messages)

    def hive_messages(self) -> list[HiveMessage]:
        """The hive messages this turn's prompt hands the model, in order."""
        return parse_hive_messages(self.prompt())


def parse_hive_messages(prompt: str) -> list[HiveMessage]:
    """Every `message <id> from <sender>:` block of a prompt."""
    found: list[HiveMessage] = []
    lines = prompt.splitlines()
    for index, line in enumerate(lines):
        header = MESSAGE_HEADER.match(line)
        if header is None:
            continue
        body: list[str] = []
        for following in lines[index + 1 :]:
            if not following.startswith(BODY_INDENT):
                break
            body.append(following[len(BODY_INDENT) :])
        found.append(HiveMessage(int(header.group(1)), header.group(2), "\n".join(body)))
    return found


def _blocks(message: Json) -> list[Json]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return cast(list[Json], content or [])


Model = Callable[[ApiRequest], Reply]


def replying_model(request: ApiRequest) -> Reply:
    """The default model: answers each hive message with `send(sender, "claude: <body>", reply_to=id)`.

    When claude offers the hive's send only behind ToolSearch (MCP tools deferred), it first
    loads it with `ToolSearch("select:mcp__hive__send")`, as a real model must. After its sends
    come back it ends the turn with a line of text.
    """
    searched = [u for u in request.last_tool_uses() if u.get("name") == TOOL_SEARCH]
    if request.answers_tools and not searched:
        return say(f"Replied to {len(request.tool_results(-1))} message(s).")
    messages = request.hive_messages()
    if not messages:
        return say("Nothing to answer.")
    if SEND not in request.tool_names and not searched and TOOL_SEARCH in request.tool_names:
        return call(ToolUse(TOOL_SEARCH, {"query": f"select:{SEND}"}))
    return call(*(send(m.sender, f"claude: {m.body}", m.id) for m in messages))


class MessagesApi:
    """The fake API's state: its model, queued replies, accepted keys, and every request it got."""

    def __init__(self, model: Model = replying_model, *, keys: Sequence[str] = (DUMMY_KEY,)) -> None:
        self.model = model
        # Requests with another x-api-key get a 401, as the real API gives an invalid key.
        self.keys = set(keys)
        self.requests: list[ApiRequest] = []
        self.port = 0
        self._queued: list[Reply] = []
        self._arrived = anyio.Event()
        self._ids = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests (with a valid key) with `replies`, in order, before the model."""
        self._queued.extend(replies)

    def settings(self, *, key: str = DUMMY_KEY, **env: str) -> Json:
        """A claude `settings.json` that sends claude here, with `key` as its API key."""
        return {
            "env": {
                "ANTHROPIC_BASE_URL": self.base_url,
                "ANTHROPIC_API_KEY": key,
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_TELEMETRY": "1",
                **env,
            }
        }

    def write_settings(self, claude_dir: Path, *, key: str = DUMMY_KEY, **env: str) -> Path:
        """Write `settings.settings(...)` as `<claude_dir>/settings.json`; returns its path."""
        claude_dir.mkdir(parents=True, exist_ok=True)
        path = claude_dir / "settings.json"
        path.write_text(json.dumps(self.settings(key=key, **env), indent=2) + "\n")
        return path

    def model_requests(self) -> list[ApiRequest]:
        """The requests to the Messages API (claude makes no others with non-essential traffic off)."""
        return [r for r in self.requests if r.path.split("?")[0] == MESSAGES_PATH]

    async def wait_requests(self, count: int) -> list[ApiRequest]:
        """Wait until `count` requests have arrived in total; returns them all."""
        while len(self.requests) < count:
            await self._arrived.wait()
        return self.requests

    async def wait_for(self, predicate: Callable[[ApiRequest], bool]) -> ApiRequest:
        """Wait for a request (one already here counts) that satisfies `predicate`."""
        seen = 0
        while True:
            for request in self.requests[seen:]:
                if predicate(request):
                    return request
            seen = len(self.requests)
            await self._arrived.wait()

    def _note(self, request: ApiRequest) -> None:
        self.requests.append(request)
        self._arrived.set()
        self._arrived = anyio.Event()

    def _reply_for(self, request: ApiRequest) -> Reply:
        if request.api_key not in self.keys:
            return ApiError(401, "invalid x-api-key")
        if self._queued:
            return self._queued.pop(0)
        return self.model(request)

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_fake{self._ids:06d}"

    # HTTP

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        """Serve one connection: requests one after another (keep-alive) until claude closes it."""
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            while True:
                try:
                    head = await reader.receive_until(b"\r\n\r\n", MAX_HEAD_BYTES)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in header_lines)
                }
                length = int(headers.get("content-length", "0"))
                raw = await reader.receive_exactly(length) if length else b""
                body = cast(Json, json.loads(raw)) if raw else {}
                request = ApiRequest(method, target, headers, body, received_at=time.time())
                self._note(request)
                if method != "POST" or target.split("?")[0] != MESSAGES_PATH:
                    await _send_json(stream, 404, _error_body(404, f"the fake API serves only {MESSAGES_PATH}"))
                    continue
                reply = self._reply_for(request)
                request.reply = reply
                if not await self._answer(stream, request, reply):
                    return
                request.answered_at = time.time()

    async def _answer(self, stream: anyio.abc.SocketStream, request: ApiRequest, reply: Reply) -> bool:
        """Answer one request; False when the connection must close (a dropped or stalled stream)."""
        if isinstance(reply, ApiError):
            extra = {"retry-after": f"{reply.retry_after_s:g}"} if reply.retry_after_s is not None else {}
            await _send_json(stream, reply.status, _error_body(reply.status, reply.message), extra)
            return True
        model = str(request.body.get("model", "claude-fake"))
        message_id = self._next_id("msg")
        if isinstance(reply, Turn) and not request.body.get("stream"):
            await _send_json(stream, 200, self._whole_message(message_id, model, reply))
            return True
        await stream.send(_head(200, {"content-type": "text/event-stream", "transfer-encoding": "chunked"}))
        usage_in = reply.input_tokens if isinstance(reply, Turn) else 10
        start: Json = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage_in, "output_tokens": 1},
        }
        await _event(stream, "message_start", {"type": "message_start", "message": start})
        if isinstance(reply, Stall):
            await anyio.sleep_forever()
        if isinstance(reply, Drop):
            block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            await _event(stream, "content_block_start", block)
            await _event(stream, "content_block_delta", _delta(0, {"type": "text_delta", "text": "Cut off mid"}))
            return False  # closing now, without the last chunk, is a dropped stream
        assert isinstance(reply, Turn)
        for index, block in enumerate(reply.blocks):
            if isinstance(block, Text):
                opened: Json = {"type": "text", "text": ""}
                delta: Json = {"type": "text_delta", "text": block.text}
            else:
                opened = {"type": "tool_use", "id": self._next_id("toolu"), "name": block.name, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block.input)}
            await _event(
                stream, "content_block_start", {"type": "content_block_start", "index": index, "content_block": opened}
            )
            await _event(stream, "content_block_delta", _delta(index, delta))
            await _event(stream, "content_block_stop", {"type": "content_block_stop", "index": index})
        finish: Json = {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        }
        await _event(stream, "message_delta", finish)
        await _event(stream, "message_stop", {"type": "message_stop"})
        await stream.send(b"0\r\n\r\n")
        return True

    def _whole_message(self, message_id: str, model: str, turn: Turn) -> Json:
        content: list[Json] = []
        for block in turn.blocks:
            if isinstance(block, Text):
                content.append({"type": "text", "text": block.text})
            else:
                content.append(
                    {"type": "tool_use", "id": self._next_id("toolu"), "name": block.name, "input": block.input}
                )
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": turn.stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens},
        }


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error_body(status: int, message: str) -> Json:
    kind = ERROR_TYPES.get(status, "not_found_error" if status == 404 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


async def _send_json(
    stream: anyio.abc.SocketStream, status: int, body: Json, extra: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", "content-length": str(len(data)), **(extra or {})}
    await stream.send(_head(status, headers) + data)


async def _event(stream: anyio.abc.SocketStream, name: str, data: Json) -> None:
    chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
    await stream.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


def _delta(index: int, delta: Json) -> Json:
    return {"type": "content_block_delta", "index": index, "delta": delta}


@asynccontextmanager
async def serve_messages_api(api: MessagesApi | None = None) -> AsyncGenerator[MessagesApi]:
    """Serve `api` (default: the replying model) on 127.0.0.1 at a free port until the context exits."""
    api = api or MessagesApi()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    api.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _guarded(api.handle))
        try:
            yield api
        finally:
            tg.cancel_scope.cancel()


def _guarded(
    handler: Callable[[anyio.abc.SocketStream], Any],
) -> Callable[[anyio.abc.SocketStream], Any]:
    async def serve_one(stream: anyio.abc.SocketStream) -> None:
        try:
            await handler(stream)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
            pass  # claude hung up (it was killed, or gave up on a stalled stream): nothing to answer

    return serve_one
