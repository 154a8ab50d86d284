"""HiveConfig's paths and the environment precedence of the directory defaults."""

import os
from pathlib import Path

import pytest

from hyperhive_core.config import MAX_SOCKET_PATH_BYTES, HiveConfig, default_run_dir, default_state_dir
from hyperhive_core.errors import ConfigError, HiveError

# len("/agents/") + 9 (the longest name) + len("/mcp.sock")
SOCKET_SUFFIX_BYTES = 26
DIR_VARS = (
    "HYPERHIVE_RUN_DIR",
    "HYPERHIVE_STATE_DIR",
    "RUNTIME_DIRECTORY",
    "STATE_DIRECTORY",
    "XDG_RUNTIME_DIR",
    "XDG_STATE_HOME",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No directory variable set; the test sets the ones it is about."""
    for var in DIR_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def run_dir_of_length(n: int) -> Path:
    path = Path("/tmp/" + "r" * (n - len("/tmp/")))
    assert len(os.fsencode(path)) == n
    return path


# paths


def test_every_socket_lives_under_the_run_dir() -> None:
    config = HiveConfig(run_dir=Path("/tmp/hh/run"), state_dir=Path("/tmp/hh/state"))
    assert config.host_socket == Path("/tmp/hh/run/host.sock")
    assert config.agent_socket_dir("alice") == Path("/tmp/hh/run/agents/alice")
    assert config.agent_socket("alice") == Path("/tmp/hh/run/agents/alice/mcp.sock")
    assert config.agent_socket("alice").is_relative_to(config.run_dir)


def test_state_lives_under_the_state_dir() -> None:
    config = HiveConfig(run_dir=Path("/tmp/hh/run"), state_dir=Path("/tmp/hh/state"))
    assert config.broker_path == Path("/tmp/hh/state/broker.sqlite")
    assert config.agent_state_dir("alice") == Path("/tmp/hh/state/agents/alice")


def test_a_run_dir_whose_longest_socket_fits_exactly_is_accepted() -> None:
    run_dir = run_dir_of_length(MAX_SOCKET_PATH_BYTES - SOCKET_SUFFIX_BYTES)
    config = HiveConfig(run_dir=run_dir, state_dir=Path("/tmp/hh/state"))
    config.check_socket_paths()
    assert len(os.fsencode(config.agent_socket("x" * 9))) == MAX_SOCKET_PATH_BYTES


@pytest.mark.parametrize(
    "length", [MAX_SOCKET_PATH_BYTES - SOCKET_SUFFIX_BYTES + 1, 200], ids=["one-over", "very-long"]
)
def test_a_run_dir_too_long_for_unix_sockets_raises_config_error(length: int) -> None:
    config = HiveConfig(run_dir=run_dir_of_length(length), state_dir=Path("/tmp/hh/state"))
    with pytest.raises(ConfigError) as caught:
        config.check_socket_paths()
    assert isinstance(caught.value, HiveError)


def test_the_config_is_frozen_and_refuses_unknown_fields() -> None:
    config = HiveConfig(run_dir=Path("/tmp/hh/run"), state_dir=Path("/tmp/hh/state"))
    with pytest.raises(ValueError, match="frozen"):
        config.run_dir = Path("/elsewhere")  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(ValueError, match="extra"):
        HiveConfig.model_validate({"run_dir": "/tmp/hh", "colour": "blue"})


# run dir precedence


def test_hyperhive_run_dir_wins_over_systemd(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HYPERHIVE_RUN_DIR", "/tmp/hh-env/run")
    clean_env.setenv("RUNTIME_DIRECTORY", "/run/systemd-hh")
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_run_dir() == Path("/tmp/hh-env/run")


def test_systemd_runtime_directory_comes_next_and_its_first_entry_is_used(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RUNTIME_DIRECTORY", "/run/hh-a:/run/hh-b")
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert default_run_dir() == Path("/run/hh-a")


def test_an_empty_hyperhive_run_dir_counts_as_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HYPERHIVE_RUN_DIR", "")
    clean_env.setenv("RUNTIME_DIRECTORY", "/run/hh-a")
    assert default_run_dir() == Path("/run/hh-a")


def test_without_variables_the_run_dir_is_the_system_or_user_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    expected = Path("/run/hyperhive") if os.geteuid() == 0 else Path("/run/user/1000/hyperhive")
    assert default_run_dir() == expected


# state dir precedence


def test_hyperhive_state_dir_wins_over_systemd(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HYPERHIVE_STATE_DIR", "/tmp/hh-env/state")
    clean_env.setenv("STATE_DIRECTORY", "/var/lib/systemd-hh")
    clean_env.setenv("XDG_STATE_HOME", "/home/u/.local/state")
    assert default_state_dir() == Path("/tmp/hh-env/state")


def test_systemd_state_directory_comes_next_and_its_first_entry_is_used(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("STATE_DIRECTORY", "/var/lib/hh-a:/var/lib/hh-b")
    clean_env.setenv("XDG_STATE_HOME", "/home/u/.local/state")
    assert default_state_dir() == Path("/var/lib/hh-a")


def test_without_variables_the_state_dir_is_the_system_or_user_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("XDG_STATE_HOME", "/home/u/.local/state")
    expected = Path("/var/lib/hyperhive") if os.geteuid() == 0 else Path("/home/u/.local/state/hyperhive")
    assert default_state_dir() == expected


def test_a_config_built_now_takes_its_dirs_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HYPERHIVE_RUN_DIR", "/tmp/hh-env/run")
    clean_env.setenv("STATE_DIRECTORY", "/var/lib/hh-a")
    config = HiveConfig()
    assert config.run_dir == Path("/tmp/hh-env/run")
    assert config.state_dir == Path("/var/lib/hh-a")
    assert config.host_socket == Path("/tmp/hh-env/run/host.sock")
