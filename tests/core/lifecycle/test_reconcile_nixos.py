"""The reconciler on the nixos backend (a fake `nixos-container` that counts its builds): a restart
with unchanged agents rebuilds none of them, a change rebuilds only its agent, a container main
does not know is reported, and removed only when the hive's settings say prune, and a daemon killed
in the middle of a step (containers outlive it) finishes the step at its next start, starting none
twice."""

import json
from pathlib import Path

import anyio

from hyperhive_agent.drivers.claude import ALLOWED_TOOLS, DISALLOWED_TOOLS
from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.states import AgentState, SyncState
from tests.core.approvals._git import hive_events, push_files
from tests.core.approvals.test_crash_apply import HIVE as CRASHED_HIVE
from tests.core.approvals.test_crash_apply import assert_finished, crash_while_approving_carol
from tests.core.lifecycle.conftest import TEMPLATE, FakeNixos
from tests.helpers import daemon_process, hive_config

HIVE = ("alice", "bob", "carol")
MIB = 2**20


def nixos_config(root: Path, fake: FakeNixos) -> HiveConfig:
    return hive_config(root, backend="nixos", nixos_template=TEMPLATE, nixos_conf_dir=fake.conf_dir)


def builds(fake: FakeNixos) -> dict[str, tuple[int, int]]:
    """Per container: (creates + updates, starts)."""
    state = fake.state()
    creates = [call[1] for call in state["calls"] if call[0] == "create"]
    return {
        name: (creates.count(name) + record["updates"], len(record["starts"]))
        for name, record in sorted(state["containers"].items())
    }


async def test_a_restart_with_unchanged_agents_rebuilds_none_and_a_change_rebuilds_only_its_agent(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    with anyio.fail_after(90):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            for name in HIVE:
                await operator.spawn(name)
        once = {f"h-{name}": (1, 1) for name in HIVE}
        assert builds(fake_nixos) == once
        # A restart: the containers ran on, nothing is built or started again.
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            agents = await operator.list_agents()
            assert [(a.name, a.state, a.sync) for a in agents] == [
                (name, AgentState.RUNNING, SyncState.READY) for name in HIVE
            ]
            assert all(config.agent_socket(name).is_socket() for name in HIVE)
        assert builds(fake_nixos) == once
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await push_files(config, short_tmpdir / "clone", {"agents/bob.toml": 'role = "review"\n'}, "bob reviews")
            assert (await operator.reconcile()).ok
            assert (await operator.status("bob")).role == "review"
        # bob restarted with his new role (it reaches him in his env file); his container's NixOS
        # config did not change, so nixos-container built nothing (the backend's own hash says so).
        assert builds(fake_nixos) == once | {"h-bob": (1, 2)}


async def test_a_container_main_does_not_know_is_reported_and_pruned_only_when_the_settings_say_so(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await operator.spawn("alice")
            # Someone made a container of ours by hand.
            for argv in (["create", "h-zed", "--config-file", str(TEMPLATE)], ["start", "h-zed"]):
                await anyio.run_process(["nixos-container", *argv])
            [step] = (await operator.plan()).steps
            assert (step.agent, step.action) == ("zed", "unmanaged")
            assert (await operator.reconcile()).steps == []
            assert fake_nixos.container("h-zed")["state"] == "up"
            await push_files(config, short_tmpdir / "clone", {"hive.toml": "prune = true\n"}, "prune")
            assert (await operator.reconcile()).ok
            assert "h-zed" not in fake_nixos.state()["containers"]
            assert [a.name for a in await operator.list_agents()] == ["alice"]
            assert (await operator.plan()).steps == []


async def test_a_daemon_killed_in_the_middle_of_a_step_finishes_it_at_its_next_start(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = hive_config(short_tmpdir)
    nixos = {"backend": "nixos", "nixos_template": str(TEMPLATE), "nixos_conf_dir": str(fake_nixos.conf_dir)}
    with anyio.fail_after(120):
        # Killed after carol's container started, before the step was journaled done.
        proposal = await crash_while_approving_carol(config, "apply:carol", nixos)
        assert fake_nixos.container("h-carol")["state"] == "up"
        async with daemon_process(config, overrides=nixos), open_hive_client(config.host_socket) as operator:
            await assert_finished(operator, config, proposal)
            steps = [(h.step, h.state) for h in (await operator.status("carol")).history]
            assert steps == [("create", "interrupted"), ("create", "done")]
        containers = fake_nixos.state()["containers"]
        creates = [call[1] for call in fake_nixos.state()["calls"] if call[0] == "create"]
        assert sorted(creates) == [("hm1nd" if n == "hm1nd" else f"h-{n}") for n in CRASHED_HIVE]
        # Created and started once each: carol's unfinished step was redone without a second container,
        # a second start, or a rebuild (her container's config is the one built before the crash).
        assert {name: (len(c["starts"]), c["updates"]) for name, c in containers.items()} == {
            "h-alice": (1, 0),
            "h-bob": (1, 0),
            "h-carol": (1, 0),
            "hm1nd": (1, 0),
        }


ALICE = """\
[nixos]
packages = ["git", "jq"]

[claude]
model = "sonnet"
tools = ["Read", "Bash(git:*)"]
permission_mode = "acceptEdits"
"""
BOB = """\
[nixos]
packages = ["ripgrep"]

[sandbox]
network = false
"""


def tools_of(fake: FakeNixos, container: str) -> list[str]:
    """The container's own tools among those the agent files name, as its built system has them."""
    packages: list[str] = fake.container(container)["system"]["packages"]
    return [p for p in packages if p.startswith(("git-", "jq-", "ripgrep-"))]


async def test_agent_files_give_two_agents_their_own_containers_and_a_package_change_rebuilds_only_its_own(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    clone = short_tmpdir / "clone"
    with anyio.fail_after(90):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await push_files(config, clone, {"agents/alice.toml": ALICE, "agents/bob.toml": BOB}, "alice and bob")
            assert (await operator.reconcile()).ok
            # Each container's NixOS config was evaluated by the real module system (the fake's build).
            assert tools_of(fake_nixos, "h-alice") == ["git-2.51.2", "jq-1.8.1"]
            assert tools_of(fake_nixos, "h-bob") == ["ripgrep-15.1.0"]
            assert json.loads(
                fake_nixos.container("h-alice")["system"]["etc"]["claude-code/managed-settings.json"]
            ) == {
                "model": "sonnet",
                "allowManagedPermissionRulesOnly": True,
                "permissions": {
                    "defaultMode": "acceptEdits",
                    "allow": ["Read", "Bash(git:*)", *ALLOWED_TOOLS],
                    "deny": list(DISALLOWED_TOOLS),
                },
            }
            assert fake_nixos.container("h-bob")["system"]["etc"] == {}
            assert fake_nixos.container("h-alice")["starts"][-1]["private_network"] == "0"
            assert fake_nixos.container("h-bob")["starts"][-1]["private_network"] == "1"
            # Everything the nixos backend applies is applied: nothing to report as not applied.
            assert (await operator.status("alice")).not_applied == []
            assert (await operator.status("bob")).not_applied == []
            built = builds(fake_nixos)

            await push_files(config, clone, {"agents/bob.toml": BOB.replace('"ripgrep"', '"ripgrep", "jq"')}, "bob: jq")
            assert (await operator.reconcile()).ok
            assert tools_of(fake_nixos, "h-bob") == ["ripgrep-15.1.0", "jq-1.8.1"]
            # bob's container was updated once; alice's was neither built nor restarted.
            assert builds(fake_nixos) == built | {"h-bob": (2, 2)}
            assert fake_nixos.container("h-bob")["updates"] == 1


HOG = """\
[limits]
memory_mb = 64
cpus = 0.5
pids = 50
"""


async def test_an_agents_limits_reach_its_container_unit_and_going_over_its_memory_is_reported_and_restarted(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    clone = short_tmpdir / "clone"
    with anyio.fail_after(90):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await push_files(config, clone, {"agents/hog.toml": HOG}, "hog")
            assert (await operator.reconcile()).ok
            assert fake_nixos.unit("h-hog")["properties"] == {
                "MemoryMax": str(64 * MIB),
                "TasksMax": "50",
                "CPUQuotaPerSecUSec": "500000",
            }
            hog = await operator.status("hog")
            assert hog.not_applied == []
            assert hog.resources is not None
            r = hog.resources
            assert (r.memory_limit_bytes, r.pids_limit, r.cpus_limit) == (64 * MIB, 50, 0.5)
            assert (r.memory_bytes or 0) > 0

            fake_nixos.oom_kill("h-hog")
            await operator.reconcile()
            events = await hive_events(operator, "hog", until="died")
            [died] = [e for e in events if e.data.get("subtype") == "died"]
            assert "stopped: it went over its memory limit (64 MiB)" in str(died.data)
            # Restarted at once (a first death), with its limits, and not rebuilt.
            assert (await operator.status("hog")).state == AgentState.RUNNING
            assert builds(fake_nixos) == {"h-hog": (1, 2)}

            # New limits restart the agent with them; its container's NixOS config is unchanged: no build.
            await push_files(config, clone, {"agents/hog.toml": HOG.replace("64", "128")}, "hog: more memory")
            assert (await operator.reconcile()).ok
            assert fake_nixos.unit("h-hog")["properties"]["MemoryMax"] == str(128 * MIB)
            assert builds(fake_nixos) == {"h-hog": (1, 3)}
