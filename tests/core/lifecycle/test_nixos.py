"""The nixos backend against a fake `nixos-container` on PATH: the verbs, their failures, and a whole hive."""

import os
from dataclasses import replace
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from hyperhive_core.cli import app
from hyperhive_core.client import open_hive_client
from hyperhive_core.config import HiveConfig
from hyperhive_core.daemon import Daemon, running_daemon
from hyperhive_core.errors import BackendError, BackendUnavailableError, ConfigError
from hyperhive_core.lifecycle import create_backend
from hyperhive_core.lifecycle._nspawn_conf import nspawn_flags, read_value
from hyperhive_core.lifecycle.base import AgentSpec, Limits
from hyperhive_core.lifecycle.nixos import CONTAINMENT, HASH_KEY, NixosBackend, container_name
from hyperhive_core.states import AgentState
from tests.core.lifecycle.conftest import STAND_IN_NIXPKGS, TEMPLATE, FakeNixos
from tests.helpers import hive_config


def nixos_config(root: Path, fake: FakeNixos, **overrides: object) -> HiveConfig:
    values: dict[str, object] = {
        "backend": "nixos",
        "nixos_template": TEMPLATE,
        "nixos_conf_dir": fake.conf_dir,
        "claude_config_dir": root / "claude",
    }
    return hive_config(root, **(values | overrides))


def spec_for(config: HiveConfig, name: str, *, env: tuple[tuple[str, str], ...] = ()) -> AgentSpec:
    return AgentSpec(
        name=name,
        socket_dir=config.agent_socket_dir(name),
        work_dir=config.agent_state_dir(name) / "work",
        log_path=config.agent_state_dir(name) / "agent.log",
        command=("hive-agent", "serve"),
        env=env,
        claude_config_dir=config.claude_config_dir,
    )


def backend_for(config: HiveConfig) -> NixosBackend:
    backend = create_backend(config)
    assert isinstance(backend, NixosBackend)
    return backend


def our_flags(config: HiveConfig, name: str) -> list[str]:
    return [f"--bind={config.agent_socket_dir(name)}:/run/hive", f"--bind={config.claude_config_dir}:/root/.claude"]


@pytest.mark.parametrize(("agent", "container"), [("alice", "h-alice"), ("hm1nd", "hm1nd")], ids=["agent", "manager"])
def test_containers_are_named_h_dash_agent_and_the_manager_hm1nd(agent: str, container: str) -> None:
    assert container_name(agent) == container


async def test_the_whole_life_cycle_runs_through_a_daemon_restart(short_tmpdir: Path, fake_nixos: FakeNixos) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    with anyio.fail_after(60):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            alice = await operator.spawn("alice")
            assert (alice.state, alice.sandbox, alice.backend) == (AgentState.RUNNING, "h-alice", "nixos")
            await operator.spawn("bob")
            conf = fake_nixos.conf("h-alice").read_text()
            assert nspawn_flags(conf) == our_flags(config, "alice")
            assert read_value(conf, "PRIVATE_NETWORK") == "0"
            record = fake_nixos.container("h-alice")
            assert (record["state"], record["builds"]) == ("up", 1)
            assert f'imports = [ "{TEMPLATE}" ];' in record["config"]
            assert record["starts"] == [{"extra_nspawn_flags": our_flags(config, "alice"), "private_network": "0"}]
            assert config.agent_socket("alice").is_socket()
            assert {(a.name, a.state) for a in await operator.list_agents()} == {
                ("alice", AgentState.RUNNING),
                ("bob", AgentState.RUNNING),
            }

            rebuilt = await operator.rebuild("alice")
            assert rebuilt.state == AgentState.RUNNING
            record = fake_nixos.container("h-alice")
            # Restarted, not rebuilt: nothing it is built from changed.
            assert (record["builds"], record["updates"], len(record["starts"])) == (1, 0, 2)

            await operator.kill("bob")
            assert not fake_nixos.conf("h-bob").exists()
            assert "h-bob" not in fake_nixos.state()["containers"]
            assert [a.name for a in await operator.list_agents()] == ["alice"]

        # The daemon is gone; its containers are not.
        assert fake_nixos.container("h-alice")["state"] == "up"
        # Meanwhile someone adds a flag of their own and moves nothing.
        conf_path = fake_nixos.conf("h-alice")
        conf_path.write_text(
            conf_path.read_text().replace('EXTRA_NSPAWN_FLAGS="', 'EXTRA_NSPAWN_FLAGS="--capability=CAP_NET_ADMIN ')
        )

        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            [alice] = await operator.list_agents()
            assert (alice.name, alice.state) == ("alice", AgentState.RUNNING)
            assert config.agent_socket("alice").is_socket()
            # Restoring re-created the socket in the dir the running container still binds.
            assert len(fake_nixos.container("h-alice")["starts"]) == 2

            rebuilt = await operator.rebuild("alice")
            assert rebuilt.state == AgentState.RUNNING
            record = fake_nixos.container("h-alice")
            expected = ["--capability=CAP_NET_ADMIN", *our_flags(config, "alice")]
            assert nspawn_flags(conf_path.read_text()) == expected
            assert record["starts"][-1] == {"extra_nspawn_flags": expected, "private_network": "0"}
            verbs = [c[0] for c in fake_nixos.state()["calls"] if c[1:2] == ["h-alice"] and c[0] != "status"]
            assert verbs[-2:] == ["stop", "start"]
            assert len(fake_nixos.calls("create")) == 2  # alice and bob, once each
            assert fake_nixos.calls("update") == []


async def test_creating_an_existing_container_whose_config_did_not_change_builds_nothing(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    spec = spec_for(config, "alice")
    await backend.create(spec)
    first = fake_nixos.conf("h-alice").read_text()
    assert read_value(first, HASH_KEY) is not None
    await backend.create(spec)
    assert fake_nixos.conf("h-alice").read_text() == first
    assert [call[:3] for call in fake_nixos.calls("create")] == [["create", "h-alice", "--config"]]
    assert fake_nixos.calls("update") == []
    assert fake_nixos.builds() == 1
    assert (await backend.status("alice")).state == AgentState.STOPPED


async def test_a_change_in_the_template_or_the_agents_settings_rebuilds_its_container_once(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    template = short_tmpdir / "agent.nix"
    template.write_text(TEMPLATE.read_text().replace("../", f"{TEMPLATE.parent.parent}/"))
    config = nixos_config(short_tmpdir, fake_nixos, nixos_template=template)
    spec = spec_for(config, "alice")
    await backend_for(config).create(spec)

    template.write_text(template.read_text() + "\n# changed\n")
    await backend_for(config).create(spec)
    await backend_for(config).create(spec)
    assert len(fake_nixos.calls("update")) == 1

    await backend_for(config).create(replace(spec, packages=("git",)))
    await backend_for(config).create(replace(spec, packages=("git",)))
    assert len(fake_nixos.calls("update")) == 2
    assert "git-2.51.2" in fake_nixos.container("h-alice")["system"]["packages"]

    await backend_for(config).create(replace(spec, packages=("git",), share_net=False))
    assert len(fake_nixos.calls("update")) == 3
    assert fake_nixos.builds() == 4


async def test_the_agent_settings_reach_the_container_as_an_env_file(short_tmpdir: Path, fake_nixos: FakeNixos) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    await backend.create(spec_for(config, "alice", env=(("HIVE_DRIVER", "echo"), ("HIVE_ROLE", 'says "hi" for $5'))))
    assert (config.agent_socket_dir("alice") / "agent.env").read_text() == (
        'HIVE_AGENT_NAME="alice"\nHIVE_SOCKET="/run/hive/mcp.sock"\nCLAUDE_CONFIG_DIR="/root/.claude"\n'
        'HIVE_DRIVER="echo"\n'
        'HIVE_ROLE="says \\"hi\\" for \\$5"\n'
    )


async def test_closing_the_backend_leaves_containers_running(short_tmpdir: Path, fake_nixos: FakeNixos) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    spec = spec_for(config, "alice")
    await backend.create(spec)
    await backend.start(spec)
    await backend.aclose()
    assert fake_nixos.container("h-alice")["state"] == "up"
    assert fake_nixos.calls("stop") == []


async def test_a_container_slow_to_stop_is_terminated_after_the_grace_period(
    short_tmpdir: Path, fake_nixos: FakeNixos, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    spec = spec_for(config, "alice")
    await backend.create(spec)
    await backend.start(spec)
    gate = short_tmpdir / "stop-gate"
    os.mkfifo(gate)  # nobody writes: stop hangs as a container that ignores its shutdown would
    monkeypatch.setenv("FAKE_NIXOS_CONTAINER_STOP_GATE", str(gate))
    with anyio.fail_after(10):
        await backend.stop("alice", grace_s=0.5)
    assert (await backend.status("alice")).state == AgentState.STOPPED
    assert fake_nixos.calls("terminate") == [["terminate", "h-alice"]]


async def test_an_unknown_container_is_missing_and_stopping_or_destroying_it_is_harmless(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    backend = backend_for(nixos_config(short_tmpdir, fake_nixos))
    status = await backend.status("ghost")
    assert (status.state, status.sandbox) == (AgentState.MISSING, "h-ghost")
    assert "does not exist" in status.detail
    await backend.stop("ghost", grace_s=1)
    await backend.destroy("ghost")
    assert fake_nixos.calls("stop") == []


async def test_starting_an_unknown_container_fails_with_the_command_and_its_stderr(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    with pytest.raises(BackendError) as caught:
        await backend.start(spec_for(config, "ghost"))
    message = str(caught.value)
    assert message.startswith("nixos-container start 'h-ghost' failed: ")
    assert "container \u2018h-ghost\u2019 does not exist" in message


async def test_a_name_too_long_for_nixos_container_fails_and_leaves_no_container(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    with pytest.raises(BackendError) as caught:
        await backend.create(spec_for(config, "abcdefghij"))
    assert "nixos-container create 'h-abcdefghij' --config '<agent-template.nix + agent settings>' failed: " in str(
        caught.value
    )
    assert "is too long" in str(caught.value)
    assert await backend.containers() == set()


async def test_a_declared_container_is_not_rewritten(short_tmpdir: Path, fake_nixos: FakeNixos) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    declared = short_tmpdir / "static-h-alice.conf"
    declared.write_text("PRIVATE_NETWORK=0\n")
    fake_nixos.conf_dir.mkdir(parents=True, exist_ok=True)
    fake_nixos.conf("h-alice").symlink_to(declared)
    with pytest.raises(BackendError) as caught:
        await backend.create(spec_for(config, "alice"))
    assert "declared in the host's configuration" in str(caught.value)
    assert declared.read_text() == "PRIVATE_NETWORK=0\n"


def test_a_host_without_nixos_container_gets_one_clear_line(
    short_tmpdir: Path, fake_nixos: FakeNixos, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendUnavailableError) as caught:
        create_backend(nixos_config(short_tmpdir, fake_nixos))
    assert str(caught.value) == (
        "nixos-container is not on PATH: the nixos backend runs on a NixOS host; use --backend local elsewhere"
    )


async def test_a_daemon_on_a_host_without_nixos_container_refuses_to_start(
    short_tmpdir: Path, fake_nixos: FakeNixos, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    config = nixos_config(short_tmpdir, fake_nixos)
    with pytest.raises(BackendUnavailableError):
        await Daemon(config).serve()
    assert not config.host_socket.exists()


def test_hivectl_serve_without_nixos_container_says_so_in_one_line(short_tmpdir: Path) -> None:
    argv = ["--run-dir", str(short_tmpdir / "run"), "--state-dir", str(short_tmpdir / "state"), "serve"]
    argv += ["--backend", "nixos", "--nixos-template", str(TEMPLATE)]
    result = CliRunner().invoke(app, argv, env={"PATH": "/nonexistent"})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: nixos-container is not on PATH: the nixos backend runs on a NixOS host; use --backend local elsewhere"
    ]


@pytest.mark.parametrize(
    ("template", "reason"),
    [(None, "needs a container template"), (Path("/nonexistent/agent.nix"), "is not a file")],
    ids=["none", "missing"],
)
def test_the_backend_needs_a_template_file(
    short_tmpdir: Path, fake_nixos: FakeNixos, template: Path | None, reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason):
        create_backend(nixos_config(short_tmpdir, fake_nixos, nixos_template=template))


async def test_restoring_a_hive_whose_containers_did_not_change_runs_no_update(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    with anyio.fail_after(90):
        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            for name in ("alice", "bob", "carol"):
                await operator.spawn(name)
        assert fake_nixos.builds() == 3
        calls = len(fake_nixos.state()["calls"])

        async with running_daemon(config), open_hive_client(config.host_socket) as operator:
            agents = await operator.list_agents()
            assert {(a.name, a.state) for a in agents} == {
                ("alice", AgentState.RUNNING),
                ("bob", AgentState.RUNNING),
                ("carol", AgentState.RUNNING),
            }
    restore = [call[0] for call in fake_nixos.state()["calls"][calls:]]
    assert "update" not in restore
    assert "create" not in restore
    assert fake_nixos.builds() == 3


async def test_a_broken_template_fails_with_nixs_own_error_and_is_retried_once_fixed(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    template = short_tmpdir / "agent.nix"
    good = TEMPLATE.read_text().replace("../", f"{TEMPLATE.parent.parent}/")
    template.write_text(
        good.replace("hyperhive.agent.claudePackage = pkgs.claude-code;", 'hyperhive.agent.role = "boss";')
    )
    config = nixos_config(short_tmpdir, fake_nixos, nixos_template=template)
    spec = spec_for(config, "alice")
    with pytest.raises(BackendError) as caught:
        await backend_for(config).create(spec)
    # The module system's words, through nixos-container's.
    assert 'is not of type `one of "agent", "manager"\'' in str(caught.value)
    assert "failed to build initial container configuration" in str(caught.value)
    assert await backend_for(config).containers() == set()

    template.write_text(good)
    await backend_for(config).create(spec)
    template.write_text(good.replace("{ pkgs, ... }:", "{ pkgs, ... }: builtins.abort"))
    with pytest.raises(BackendError, match="failed to build container configuration"):
        await backend_for(config).create(spec)
    template.write_text(good + "\n")
    await backend_for(config).create(spec)
    await backend_for(config).create(spec)
    # The failed update recorded nothing, so the fixed template was built; then it is current.
    assert len(fake_nixos.calls("update")) == 2
    assert fake_nixos.builds() == 2


async def test_destroying_a_running_container_terminates_it_first(short_tmpdir: Path, fake_nixos: FakeNixos) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    spec = spec_for(config, "alice")
    await backend.create(spec)
    await backend.start(spec)
    leader: int = fake_nixos.container("h-alice")["leader"]
    pidfd = os.pidfd_open(leader)
    try:
        await backend.destroy("alice")
        with anyio.fail_after(10):
            await anyio.wait_readable(pidfd)  # the container's leader has exited
    finally:
        os.close(pidfd)
    assert fake_nixos.state()["terminated"] == [["h-alice", leader]]
    assert not fake_nixos.conf("h-alice").exists()
    assert not fake_nixos.configuration("h-alice").exists()
    assert (await backend.status("alice")).state == AgentState.MISSING


async def test_two_agents_get_their_own_tools_and_claude_settings_in_their_containers(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    await backend.create(replace(spec_for(config, "alice"), packages=("git", "jq")))
    await backend.create(replace(spec_for(config, "bob"), packages=("ripgrep",), claude_settings={"model": "opus"}))
    alice = fake_nixos.container("h-alice")["system"]
    bob = fake_nixos.container("h-bob")["system"]
    assert [p for p in alice["packages"] if p.startswith(("git", "jq", "ripgrep"))] == ["git-2.51.2", "jq-1.8.1"]
    assert [p for p in bob["packages"] if p.startswith(("git", "jq", "ripgrep"))] == ["ripgrep-15.1.0"]
    assert alice["etc"] == {}
    assert bob["etc"] == {"claude-code/managed-settings.json": '{"model":"opus"}'}
    assert alice["path"] != bob["path"]


async def test_containers_are_built_from_the_nixpkgs_that_nix_path_names(
    short_tmpdir: Path, fake_nixos: FakeNixos, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = backend_for(nixos_config(short_tmpdir, fake_nixos))
    assert backend.info.warnings == []
    await backend.create(spec_for(nixos_config(short_tmpdir, fake_nixos), "alice"))
    assert fake_nixos.container("h-alice")["system"]["nixpkgs"] == [str(STAND_IN_NIXPKGS)]

    # Without one, as a systemd service without the module's NIX_PATH: warned, and the build fails.
    monkeypatch.delenv("NIX_PATH")
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    assert backend.info.warnings == [
        "NIX_PATH (unset) names no nixpkgs: nixos-container builds containers from the host's channel, "
        "or fails without one; the NixOS module sets NIX_PATH=nixpkgs=… to the flake's pinned nixpkgs"
    ]
    with pytest.raises(BackendError, match="'nixpkgs/nixos' was not found in the Nix search path"):
        await backend.create(spec_for(config, "bob"))


async def test_a_package_that_is_no_nixpkgs_attribute_path_is_refused_before_any_build(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    with pytest.raises(ConfigError, match="is not a nixpkgs attribute path"):
        await backend_for(config).create(replace(spec_for(config, "alice"), packages=('git"; evil = "',)))
    assert fake_nixos.state()["calls"] == []
    # A well-formed name nixpkgs lacks is the template's to refuse, in the module system's words.
    with pytest.raises(BackendError, match="nixpkgs has no package `no-such-tool'"):
        await backend_for(config).create(replace(spec_for(config, "alice"), packages=("no-such-tool",)))
    assert await backend_for(config).containers() == set()


MIB = 2**20


async def test_an_agents_limits_are_its_container_units_and_status_shows_them_with_its_use(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    spec = replace(spec_for(config, "alice"), limits=Limits(memory_bytes=512 * MIB, pids=100, cpus=1.5))
    await backend.create(spec)
    await backend.start(spec)
    assert fake_nixos.state()["systemctl_calls"][0] == [
        "set-property",
        "--runtime",
        "container@h-alice.service",
        "MemoryMax=536870912",
        "CPUQuota=150%",
        "TasksMax=100",
    ]
    assert fake_nixos.unit("h-alice")["properties"] == {
        "MemoryMax": "536870912",
        "TasksMax": "100",
        "CPUQuotaPerSecUSec": "1500000",
    }
    status = await backend.status("alice")
    assert (status.state, status.containment) == (AgentState.RUNNING, CONTAINMENT)
    assert status.limits == spec.limits
    assert status.usage is not None
    assert (status.usage.memory_bytes or 0) > 0  # the container's leader, as the fake measures it
    assert status.usage.pids == 1
    assert status.usage.cpu_s is not None

    # New limits reach the running container at once, without a restart; unset ones are lifted.
    await backend.start(replace(spec, limits=Limits(memory_bytes=256 * MIB)))
    assert len(fake_nixos.container("h-alice")["starts"]) == 1
    assert (await backend.status("alice")).limits == Limits(memory_bytes=256 * MIB)


async def test_a_container_over_its_memory_is_stopped_and_reported_until_it_starts_again(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    spec = replace(spec_for(config, "alice"), limits=Limits(memory_bytes=64 * MIB))
    await backend.create(spec)
    await backend.start(spec)
    fake_nixos.oom_kill("h-alice")
    status = await backend.status("alice")
    assert status.state == AgentState.FAILED
    assert status.detail.startswith("stopped: it went over its memory limit (64 MiB); the kernel killed a process")
    assert "container@h-alice.service: Result=oom-kill" in status.detail
    await backend.start(spec)
    assert (await backend.status("alice")).state == AgentState.RUNNING
    # A clean stop is a stop, not a failure.
    await backend.stop("alice", grace_s=10)
    assert (await backend.status("alice")).state == AgentState.STOPPED


async def test_limits_systemd_refuses_fail_the_start_with_its_words_and_nothing_starts(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    backend = backend_for(config)
    spec = replace(spec_for(config, "alice"), limits=Limits(pids=0))
    await backend.create(spec)
    with pytest.raises(BackendError, match=r"systemctl set-property .* TasksMax=0 failed: Failed to parse TasksMax"):
        await backend.start(spec)
    assert fake_nixos.calls("start") == []


async def test_a_host_without_systemctl_is_warned_and_starts_no_unlimited_agent(
    short_tmpdir: Path, fake_nixos: FakeNixos
) -> None:
    config = nixos_config(short_tmpdir, fake_nixos)
    nix_path = f"nixpkgs={STAND_IN_NIXPKGS}"
    backend = NixosBackend(
        template=TEMPLATE, conf_dir=fake_nixos.conf_dir, nix_path=nix_path, systemctl="no-such-systemctl"
    )
    assert backend.info.warnings == [
        "no-such-systemctl is not on PATH: agents' memory, CPU and process limits cannot be set on their "
        "containers' units, so agents do not start; the NixOS module's service has it"
    ]
    spec = spec_for(config, "alice")
    await backend.create(spec)
    with pytest.raises(BackendUnavailableError, match="systemctl is not on PATH"):
        await backend.start(spec)
    assert fake_nixos.calls("start") == []
