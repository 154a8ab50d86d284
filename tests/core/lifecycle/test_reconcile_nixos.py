"""The reconciler on the nixos backend (a fake `nixos-container` that counts its builds): a restart
with unchanged agents rebuilds none of them, a change rebuilds only its agent, and a container main
does not know is reported, and removed only when the hive's settings say prune."""

from pathlib import Path

import anyio

from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import running_daemon
from hyperhive_core.states import AgentState, SyncState
from tests.core.approvals._git import push_files
from tests.core.lifecycle.conftest import TEMPLATE, FakeNixos
from tests.helpers import hive_config

HIVE = ("alice", "bob", "carol")


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
        for _ in range(2):  # restarts: the containers ran on, nothing is built or started again
            async with running_daemon(config), open_hive_client(config.host_socket) as operator:
                agents = await operator.list_agents()
                assert [(a.name, a.state, a.sync) for a in agents] == [
                    (name, AgentState.RUNNING, SyncState.READY) for name in HIVE
                ]
                assert all(config.agent_socket(name).is_socket() for name in HIVE)
            assert builds(fake_nixos) == once
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            await push_files(config, short_tmpdir / "clone", {"agents/bob.toml": 'role = "review"\n'}, "bob reviews")
            report = await operator.reconcile()
            assert [(s.agent, s.action, s.ok) for s in report.steps] == [("bob", "rebuild", True)]
            assert (await operator.status("bob")).role == "review"
        assert builds(fake_nixos) == once | {"h-bob": (2, 2)}


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
            report = await operator.reconcile()
            assert [(s.agent, s.action, s.ok) for s in report.steps] == [("zed", "prune", True)]
            assert "h-zed" not in fake_nixos.state()["containers"]
            assert [a.name for a in await operator.list_agents()] == ["alice"]
            assert (await operator.plan()).steps == []
