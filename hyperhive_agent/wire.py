"""Wire names and limits both sides of the hive socket use: the daemon imports them from here.

Standard library only and import-free, so the bridge (started on every claude session) can read it.
Changing a value here changes the protocol: the daemon's tool schemas and the agent's clients follow.
"""

# Tools every agent's socket offers.
SEND = "send"
RECV = "recv"
ACK = "ack"
INBOX = "inbox"
WHOAMI = "whoami"
PEERS = "peers"
REPORT_EVENTS = "report_events"

# A message body (UTF-8 bytes) the daemon accepts by default.
MAX_BODY_BYTES = 64 * 1024
# Message ids are SQLite integers: a larger number can name no message.
MAX_MESSAGE_ID = 2**63 - 1
# An idempotency key: a retried `send` with the same key from the same sender is stored once.
MAX_KEY_CHARS = 128
KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
# A reader's name: leases taken with a cursor belong to it, and carry over when it reconnects.
MAX_READER_CHARS = 64
READER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# Readers one connection may read as: enough for any client, bounded against one inventing thousands.
MAX_READERS_PER_CONNECTION = 8
# The turn loop's reader name: one turn loop per agent, so its leases carry over its reconnects
# and its restarts.
TURN_LOOP_READER = "turn-loop"
# Most ids one `ack` call takes.
MAX_ACK_IDS = 1000

# Calls the bridge may send again on its own after the daemon restarted mid-call: reads, and
# `send` (the bridge gives every send an idempotency key, so a retry is stored once). Any other
# tool call in flight is answered with RESTARTED_MESSAGE instead.
RETRYABLE_TOOLS = frozenset({SEND, RECV, INBOX, WHOAMI, PEERS, "list_agents", "agent_status", "agent_logs"})

# The turn event an agent reports for each model turn: `{"type": "hive", "subtype": USAGE_EVENT}`
# with the turn's own tokens (USAGE_TOKEN_FIELDS), `cost_usd` and `duration_ms`. The daemon
# records it and enforces budgets on it (see hyperhive_core/budget).
USAGE_EVENT = "usage"
USAGE_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
