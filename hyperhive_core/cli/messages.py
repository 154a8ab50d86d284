"""The message verbs of hivectl, as the principal `operator`: send, recv, inbox."""

import sys
from typing import Annotated, Any

import typer

from hyperhive_core.cli._client import OperatorClient
from hyperhive_core.cli._common import Json, call_daemon, console, print_json
from hyperhive_core.cli._render import inbox_table, messages_table
from hyperhive_core.mcp.models import MAX_RECV_BATCH, MAX_RECV_TIMEOUT_S, InboxView, RecvResult, SendReceipt


def send(
    ctx: typer.Context,
    to: Annotated[str, typer.Argument(help="Recipient agent.")],
    body: Annotated[str, typer.Argument(help="Message text; '-' reads it from stdin.")],
    reply_to: Annotated[int | None, typer.Option(help="Id of the message this answers.")] = None,
    json: Json = False,
) -> None:
    """Send a message as the operator; returns once it is stored durably."""
    text = sys.stdin.read() if body == "-" else body

    def act(client: OperatorClient) -> SendReceipt:
        arguments: dict[str, Any] = {"to": to, "body": text}
        if reply_to is not None:
            arguments["reply_to"] = reply_to
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
) -> None:
    """Take the operator's messages (each is handed out once), waiting up to --wait seconds."""

    def act(client: OperatorClient) -> RecvResult:
        return client.call("recv", {"timeout_s": wait, "max": max}, RecvResult, wait_s=wait)

    result = call_daemon(ctx, act)
    if json:
        print_json(result)
    else:
        console.print(messages_table(result.messages, title=f"operator received ({result.remaining} still queued)"))


def inbox(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(help="Whose inbox; default the operator's.")] = "operator",
    limit: Annotated[int, typer.Option(min=0, max=MAX_RECV_BATCH, help="Most queued messages to show.")] = 20,
    json: Json = False,
) -> None:
    """Peek at an inbox without taking anything."""

    def act(client: OperatorClient) -> InboxView:
        return client.call("inbox", {"agent": agent, "limit": limit}, InboxView)

    view = call_daemon(ctx, act)
    if json:
        print_json(view)
    else:
        console.print(inbox_table(view))
