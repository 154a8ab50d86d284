"""The agent naming rules: what `validate_agent_name` accepts and how it refuses the rest."""

import pytest

from hyperhive_core.errors import HiveError, InvalidAgentNameError
from hyperhive_core.names import MAX_NAME_CHARS, RESERVED_NAMES, validate_agent_name


@pytest.mark.parametrize(
    "name",
    ["a", "alice", "bob-2", "x1", "a-b-c", "z" * MAX_NAME_CHARS, "abcdefgh-", "hm1ndx"],
    ids=["one-letter", "word", "dash-and-digit", "letter-digit", "dashes", "longest", "trailing-dash", "near-reserved"],
)
def test_a_valid_name_is_returned_unchanged(name: str) -> None:
    assert validate_agent_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "z" * (MAX_NAME_CHARS + 1),
        "Alice",
        "ALICE",
        "1abc",
        "-abc",
        "../x",
        "a/b",
        ".",
        "..",
        "a b",
        "a_b",
        "a.b",
        "é",
        "operator",
        "hm1nd",
        "hive",
    ],
    ids=[
        "empty",
        "too-long",
        "capitalised",
        "uppercase",
        "leading-digit",
        "leading-dash",
        "parent-path",
        "slash",
        "dot",
        "dot-dot",
        "space",
        "underscore",
        "inner-dot",
        "non-ascii",
        "operator-reserved",
        "manager-reserved",
        "daemon-reserved",
    ],
)
def test_an_invalid_name_raises_invalid_agent_name_error_with_a_reason(name: str) -> None:
    with pytest.raises(InvalidAgentNameError) as caught:
        validate_agent_name(name)
    assert isinstance(caught.value, HiveError)
    assert caught.value.name == name
    assert caught.value.reason


def test_every_reserved_name_would_otherwise_be_valid() -> None:
    # reserved is its own rule: these names pass every other check
    for name in RESERVED_NAMES:
        assert len(name) <= MAX_NAME_CHARS
        assert name == name.lower()
        assert name[0].isalpha()
