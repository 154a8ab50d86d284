"""The desired hive's files: validated with the file, line and field of each problem; written back as
TOML that tomllib reads the same; hashed by their settings, not their text."""

import tomllib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperhive_core.approvals._toml import dumps
from hyperhive_core.approvals.agentfile import (
    AgentFile,
    HiveSettings,
    config_hash,
    not_applied,
    parse_agent,
    parse_settings,
    render_agent,
    render_settings,
)
from hyperhive_core.approvals.reconciler import restart_delay
from hyperhive_core.errors import AgentFileError


def refused(path: str, text: str) -> AgentFileError:
    with pytest.raises(AgentFileError) as caught:
        parse_agent(path, text.encode())
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ('role = "x"\n\n\ndriver = 7\n', 4, "driver"),
        ('role = "x"\n[claude]\nmodel = "m"\n[limits]\n# a comment\nmemory_mb = -1\n', 6, "limits.memory_mb"),
        ('[sandbox]\nextra_dirs = [{ path = "relative" }]\n', 2, "sandbox.extra_dirs.0.path"),
        ("generation = 1\nrole = 3\n", 2, "role"),
        ('[sandbox]\nnetwork = true\nwifi = "on"\n', 3, "sandbox.wifi"),
    ],
    ids=["driver", "section", "list-item", "type", "unknown-in-section"],
)
def test_a_bad_field_is_named_with_its_line(text: str, line: int, field: str) -> None:
    error = refused("agents/alice.toml", text)
    assert (error.path, error.line, error.field) == ("agents/alice.toml", line, field)
    assert str(error).startswith(f"agents/alice.toml line {line}: {field}: ")
    assert str(error).endswith("fix the file on main (or roll it back with git revert): nothing was applied")


def test_a_toml_syntax_error_is_named_with_its_line_and_column() -> None:
    error = refused("agents/alice.toml", 'role = "x"\ndriver = \n')
    assert error.line == 2
    assert "not valid TOML: " in error.problem
    assert "(column " in error.problem


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("agents/Alice.toml", "the file name is no agent name"),
        ("agents/operator.toml", "reserved"),
        ("agents/alice.tml", "not an agent file"),
        ("agents/team/alice.toml", "not an agent file"),
    ],
    ids=["upper", "reserved", "suffix", "nested"],
)
def test_a_file_under_agents_that_names_no_agent_is_refused(path: str, problem: str) -> None:
    error = refused(path, 'role = "x"\n')
    assert problem in error.problem
    assert error.path == path


def test_the_manager_has_a_file_of_its_own() -> None:
    assert parse_agent("agents/hm1nd.toml", b'role = "lead"\n') == ("hm1nd", AgentFile(role="lead"))


def test_hive_settings_are_checked_too() -> None:
    assert parse_settings(render_settings(HiveSettings()).encode()) == HiveSettings()
    with pytest.raises(AgentFileError) as caught:
        parse_settings(b"restart_backoff_s = 10\nrestart_backoff_max_s = 5\n")
    assert "restart_backoff_max_s (5) is below restart_backoff_s (10)" in str(caught.value)
    with pytest.raises(AgentFileError) as caught:
        parse_settings(b"prune = 1\n")
    assert str(caught.value).startswith("hive.toml line 1: prune: ")


def test_an_agent_file_is_written_with_only_what_differs_and_reads_back_the_same() -> None:
    file = AgentFile.model_validate(
        {
            "role": 'reviews "pull requests"\nand says why',
            "driver": "claude",
            "claude": {"model": "claude-opus", "tools": ["Read", "Grep"]},
            "sandbox": {"network": False, "extra_dirs": [{"path": "/srv/data", "mode": "rw"}]},
            "limits": {"memory_mb": 512},
        }
    )
    text = render_agent("alice", file)
    assert "[budget]" not in text
    assert "generation" not in text
    assert parse_agent("agents/alice.toml", text.encode()) == ("alice", file)
    # claude's settings reach every backend; the sandbox's binds are the local one's, limits both
    assert not_applied(file, "local") == []
    assert not_applied(file, "nixos") == ["sandbox.extra_dirs"]


def test_the_host_an_agent_is_placed_on_is_applied_by_every_backend() -> None:
    # placement honours `host` (each daemon runs only its host's agents); plan and status said
    # "not applied by this daemon yet: host" about it all the same
    file = AgentFile(host="host-b")
    assert not_applied(file, "local") == []
    assert not_applied(file, "nixos") == []


def test_the_hash_follows_the_settings_not_the_text() -> None:
    plain = parse_agent("agents/alice.toml", b'role = "x"\ndriver = "echo"\n')[1]
    commented = parse_agent("agents/alice.toml", b'# hi\ndriver = "echo"   # reordered\n\nrole = "x"\n')[1]
    assert config_hash(plain) == config_hash(commented)
    assert config_hash(plain) != config_hash(plain.model_copy(update={"generation": 1}))


scalars = st.one_of(
    st.text(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
plain_values = st.one_of(scalars, st.lists(scalars, max_size=4))
keys = st.text(min_size=1, max_size=12)
documents = st.dictionaries(
    keys,
    st.one_of(
        plain_values,
        st.dictionaries(
            keys, st.one_of(plain_values, st.lists(st.dictionaries(keys, scalars, max_size=3), max_size=2)), max_size=4
        ),
    ),
    max_size=6,
)


@given(documents)
def test_tomllib_reads_back_what_the_writer_wrote(document: dict[str, Any]) -> None:
    assert tomllib.loads(dumps(document, header="a header\nover two lines")) == document


def test_restart_waits_double_from_the_second_death_and_from_the_first_failed_start() -> None:
    settings = HiveSettings(restart_backoff_s=1, restart_backoff_max_s=5)
    assert [restart_delay(n, settings, died=True) for n in range(1, 7)] == [0, 1, 2, 4, 5, 5]
    assert [restart_delay(n, settings, died=False) for n in range(1, 5)] == [1, 2, 4, 5]
