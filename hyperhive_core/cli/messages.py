"""The message verbs of hivectl, as the principal `operator`: send, recv, ack, inbox."""

import sys
from typing import Annotated, Any

import typer

from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._common import Json, RunDir, StateDir, call_daemon, console, print_json, use_dirs
from hyperhive_core.cli._render import inbox_table, messages_table
from hyperhive_core.mcp.models import (
    MAX_RECV_BATCH,
    MAX_RECV_TIMEOUT_S,
    AckReceipt,
    InboxView,
    RecvResult,
    SendReceipt,
)


def send(
    ctx: typer.Context,
    to: Annotated[str, typer.Argument(help="Recipient agent.")],
    body: Annotated[str, typer.Argument(help="Message text; '-' reads it from stdin.")],
    reply_to: Annotated[int | None, typer.Option(help="Id of the message this answers.")] = None,
    key: Annotated[
        str | None, typer.Option(help="Idempotency key: sending again with the same key stores one message.")
    ] = None,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Send a message as the operator; returns once it is stored durably."""
    use_dirs(ctx, run_dir, state_dir)
    text = sys.stdin.read() if body == "-" else body

    def act(client: OperatorClient) -> SendReceipt:
        arguments: dict[str, Any] = {"to": to, "body": text}
        if reply_to is not None:
            arguments["reply_to"] = reply_to
        if key is not None:
            arguments["key"] = key
        return client.call("send", arguments, SendReceipt)

    receipt = call_daemon(ctx, act)
    if json:
        print_json(receipt)
    else:
        console.print(f"sent message {receipt.id} to {receipt.recipient}", markup=False)


def recv(
    ctx: typer.Context,
    wait: Annotated[
        float, typer.Option(min=0, max=MAX_RECV_TIMEOUT_S, help="Seconds to wait for a first message.")
    ] = 0.0,
    max: Annotated[int, typer.Option(min=1, max=MAX_RECV_BATCH, help="Most messages to take.")] = 10,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Take the operator's messages, waiting up to --wait seconds; what is printed is acknowledged.

    Until printed, the messages are leased to this command: if it dies first, they come back.
    """
    use_dirs(ctx, run_dir, state_dir)

    def act(client: OperatorClient) -> RecvResult:
        # A cursor makes this a lease of this connection: nothing is lost if we die before printing.
        result = client.call("recv", {"timeout_s": wait, "max": max, "after": 0}, RecvResult, wait_s=wait)
        if json:
            print_json(result)
        else:
            title = f"operator received ({result.remaining} still queued)"
            console.print(messages_table(result.messages, title=title))
        if result.messages:
            client.call("ack", {"ids": [m.id for m in result.messages]}, AckReceipt)
        return result

    call_daemon(ctx, act)


def ack(
    ctx: typer.Context,
    ids: Annotated[list[int], typer.Argument(help="Ids of messages handed to the operator.")],
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Acknowledge the operator's messages by id: done with, never handed out again."""
    use_dirs(ctx, run_dir, state_dir)
    receipt = call_daemon(ctx, lambda client: client.call("ack", {"ids": ids}, AckReceipt))
    if json:
        print_json(receipt)
        return
    if receipt.acked:
        console.print(f"acknowledged {', '.join(map(str, receipt.acked))}", markup=False)
    if receipt.not_yours:
        console.print(
            f"not handed to the operator (recv them first): {', '.join(map(str, receipt.not_yours))}", markup=False
        )
        raise typer.Exit(1)


def inbox(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="Whose inbox; default the operator's.")] = "operator",
    limit: Annotated[int, typer.Option(min=0, max=MAX_RECV_BATCH, help="Most queued messages to show.")] = 20,
    json: Json = False,
    run_dir: RunDir = None,
    state_dir: StateDir = None,
) -> None:
    """Peek at an inbox without taking anything; sends to it that were refused are listed too."""
    use_dirs(ctx, run_dir, state_dir)

    def act(client: OperatorClient) -> InboxView:
        return client.call("inbox", {"agent": agent, "limit": limit}, InboxView)

    view = call_daemon(ctx, act)
    if json:
        print_json(view)
    else:
        console.print(inbox_table(view))
