"""The conf rewrite: our binds in EXTRA_NSPAWN_FLAGS, idempotent, foreign flags and lines kept."""

from pathlib import Path

import pytest

from hyperhive_core.lifecycle._nspawn_conf import Bind, nspawn_flags, read_value, set_binds, set_value

SOCKET = Bind(Path("/run/hyperhive/agents/alice"), "/run/hive")
CLAUDE = Bind(Path("/var/lib/hyperhive/claude"), "/root/.claude")
OURS = ["--bind=/run/hyperhive/agents/alice:/run/hive", "--bind=/var/lib/hyperhive/claude:/root/.claude"]
CREATED = (
    "PRIVATE_NETWORK=1\nHOST_ADDRESS=10.233.1.1\nLOCAL_ADDRESS=10.233.1.2\nHOST_BRIDGE=\nHOST_PORT=\nAUTO_START=0\n"
)

# (conf text, the foreign flags that must survive)
CONFS: dict[str, tuple[str, list[str]]] = {
    "as nixos-container create writes it": (CREATED, []),
    "an empty file": ("", []),
    "empty flags": ('EXTRA_NSPAWN_FLAGS=""\n', []),
    "double quoted": (
        'EXTRA_NSPAWN_FLAGS="--private-users=pick --bind-ro=/srv:/srv"\n',
        ["--private-users=pick", "--bind-ro=/srv:/srv"],
    ),
    "single quoted, odd spacing": ("  EXTRA_NSPAWN_FLAGS = '--a   --b'  \n", ["--a", "--b"]),
    "unquoted": ("EXTRA_NSPAWN_FLAGS=--a --b\n", ["--a", "--b"]),
    "mixed quoting": ("EXTRA_NSPAWN_FLAGS=\"--a\" '--b' --c\n", ["--a", "--b", "--c"]),
    "no final newline": ('AUTO_START=0\nEXTRA_NSPAWN_FLAGS="--a"', ["--a"]),
    "assigned twice: the last wins": (
        'EXTRA_NSPAWN_FLAGS="--old"\nAUTO_START=0\nEXTRA_NSPAWN_FLAGS="--new"\n',
        ["--new"],
    ),
    "our stale binds, both forms": (
        'EXTRA_NSPAWN_FLAGS="--bind=/old/alice:/run/hive --keep --bind /old/claude:/root/.claude '
        '--bind-ro=/x:/run/hive"\n',
        ["--keep"],
    ),
    "a bind without target elsewhere": (
        'EXTRA_NSPAWN_FLAGS="--bind=/srv --bind /opt:/opt:ro"\n',
        ["--bind=/srv", "--bind", "/opt:/opt:ro"],
    ),
}


@pytest.mark.parametrize(("text", "foreign"), CONFS.values(), ids=CONFS.keys())
def test_our_binds_come_after_the_flags_that_are_not_ours(text: str, foreign: list[str]) -> None:
    rewritten = set_binds(text, [SOCKET, CLAUDE])
    assert nspawn_flags(rewritten) == [*foreign, *OURS]


@pytest.mark.parametrize(("text", "foreign"), CONFS.values(), ids=CONFS.keys())
def test_rewriting_twice_changes_nothing(text: str, foreign: list[str]) -> None:
    once = set_value(set_binds(text, [SOCKET, CLAUDE]), "PRIVATE_NETWORK", "0")
    assert set_value(set_binds(once, [SOCKET, CLAUDE]), "PRIVATE_NETWORK", "0") == once


def test_every_other_line_is_kept_in_place() -> None:
    text = '# made by hand\nPRIVATE_NETWORK=1\nEXTRA_NSPAWN_FLAGS="--a"\nAUTO_START=1\n'
    assert set_binds(text, [SOCKET]) == (
        '# made by hand\nPRIVATE_NETWORK=1\nEXTRA_NSPAWN_FLAGS="--a --bind=/run/hyperhive/agents/alice:/run/hive"\n'
        "AUTO_START=1\n"
    )


def test_a_missing_flags_line_is_appended() -> None:
    assert (
        set_binds(CREATED, [SOCKET]) == CREATED + 'EXTRA_NSPAWN_FLAGS="--bind=/run/hyperhive/agents/alice:/run/hive"\n'
    )


def test_duplicate_flags_lines_become_one() -> None:
    text = 'EXTRA_NSPAWN_FLAGS="--old"\nAUTO_START=0\nEXTRA_NSPAWN_FLAGS="--new"\n'
    rewritten = set_binds(text, [SOCKET])
    assert rewritten.count("EXTRA_NSPAWN_FLAGS") == 1
    assert rewritten.startswith("EXTRA_NSPAWN_FLAGS=")


def test_a_moved_socket_dir_replaces_the_old_bind() -> None:
    moved = Bind(Path("/run/other/agents/alice"), "/run/hive")
    rewritten = set_binds(set_binds(CREATED, [SOCKET]), [moved])
    assert nspawn_flags(rewritten) == ["--bind=/run/other/agents/alice:/run/hive"]


def test_values_are_set_in_place_and_read_back_unquoted() -> None:
    rewritten = set_value(CREATED, "PRIVATE_NETWORK", "0")
    assert rewritten.splitlines()[0] == "PRIVATE_NETWORK=0"
    assert read_value(rewritten, "PRIVATE_NETWORK") == "0"
    assert read_value('X="a b"\n', "X") == "a b"
    assert read_value(CREATED, "EXTRA_NSPAWN_FLAGS") is None


@pytest.mark.parametrize(
    "source",
    ["/run/hyper hive/agents/alice", '/run/"x"', "/run/$HOME", "/run/a\\b"],
    ids=["space", "quote", "dollar", "backslash"],
)
def test_a_bind_the_start_script_would_split_is_refused(source: str) -> None:
    with pytest.raises(ValueError, match="nspawn would split it"):
        set_binds(CREATED, [Bind(Path(source), "/run/hive")])


def test_unbalanced_quotes_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="cannot parse"):
        set_binds('EXTRA_NSPAWN_FLAGS="--a\n', [SOCKET])
