"""desired_hash: equal desired state hashes equal, however it was built; any change shows."""

import math

import pytest

from hyperhive_core.lifecycle.desired import desired_hash


def test_the_hash_does_not_depend_on_the_order_a_document_was_built_in() -> None:
    first = desired_hash({"config": "x", "binds": ["a", "b"], "nested": {"one": 1, "two": None}})
    second = desired_hash({"nested": {"two": None, "one": 1}, "binds": ["a", "b"], "config": "x"})
    assert first == second
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 64


@pytest.mark.parametrize(
    "changed",
    [
        {"config": "y", "binds": ["a", "b"]},
        {"config": "x", "binds": ["b", "a"]},
        {"config": "x", "binds": ["a", "b"], "private_network": True},
        {"config": "x", "binds": ["a", "b "]},
    ],
    ids=["value", "list-order", "new-key", "whitespace"],
)
def test_any_change_in_the_document_changes_the_hash(changed: dict[str, object]) -> None:
    assert desired_hash(changed) != desired_hash({"config": "x", "binds": ["a", "b"]})


def test_what_json_cannot_say_is_refused() -> None:
    with pytest.raises(TypeError):
        desired_hash({"path": object()})
    with pytest.raises(ValueError, match="JSON compliant"):
        desired_hash({"nan": math.nan})
