"""Runs `python -m hyperhive_agent` as a real child process, and reads its output line by line."""

import os
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

REPO_ROOT = Path(__file__).resolve().parents[2]


def agent_command(*args: str, module: str = "hyperhive_agent") -> list[str]:
    """The command line for `hive-agent ARGS` (or another of our modules), run from this checkout."""
    return [sys.executable, "-m", module, *args]


@asynccontextmanager
async def running_agent(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    inherit_env: bool = True,
    module: str = "hyperhive_agent",
) -> AsyncGenerator[Process]:
    """Start `hive-agent ARGS` with piped stdio; kill it on the way out if a test left it running.

    `env` is added to this process's environment, or with `inherit_env=False` is the whole of it.
    """
    base = dict(os.environ) if inherit_env else {}
    process = await anyio.open_process(agent_command(*args, module=module), cwd=cwd, env={**base, **(env or {})})
    try:
        yield process
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.aclose()


class LineReader:
    """Reads newline-terminated lines from a child's pipe."""

    def __init__(self, stream: ByteReceiveStream | None) -> None:
        assert stream is not None
        self._stream = BufferedByteReceiveStream(stream)

    async def line(self) -> str:
        """The next line, without its newline; raises `anyio.EndOfStream` at EOF."""
        try:
            return (await self._stream.receive_until(b"\n", 1024 * 1024)).decode()
        except anyio.IncompleteRead:
            raise anyio.EndOfStream from None

    async def until(self, needle: str) -> str:
        """Skip lines until one contains `needle`, and return it."""
        while needle not in (line := await self.line()):
            pass
        return line

    async def rest(self) -> str:
        """Everything up to EOF."""
        chunks: list[bytes] = []
        try:
            while True:
                chunks.append(await self._stream.receive())
        except anyio.EndOfStream:
            pass
        return b"".join(chunks).decode()
