"""Which host runs an agent: the `host` of its file; without one, this host on a hive of one host,
and no host at all on a hive whose desired state is shared (every host reads the same main, so
"here" would be every host)."""

from hyperhive_core.approvals.agentfile import AgentFile


def host_of(file: AgentFile, *, here: str, shared: bool) -> str | None:
    """The host agent `file` is placed on; None when a shared hive's file names none (nobody runs it)."""
    if file.host is not None:
        return file.host
    return None if shared else here


def unplaced_reason(name: str, here: str) -> str:
    """What to do about an agent a shared hive's file places on no host."""
    return (
        f"placed on no host, so no daemon runs it: add host = {here!r} (or another host) to agents/{name}.toml, "
        f"or `hivectl place {name} HOST`"
    )
