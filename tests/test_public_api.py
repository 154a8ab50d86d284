"""Every package that declares `__all__` keeps it sorted (as ruff sorts it), and every name in it resolves."""

import importlib
import pkgutil
from types import ModuleType

import pytest

import hyperhive_agent
import hyperhive_core

CHECKED = ("hyperhive_core.cli", "hyperhive_core.lifecycle")


def packages_with_all() -> list[str]:
    """Every package of the project whose `__init__` defines `__all__`."""
    candidates: list[str] = []
    for root in (hyperhive_core, hyperhive_agent):
        candidates.append(root.__name__)
        candidates.extend(
            info.name for info in pkgutil.walk_packages(root.__path__, prefix=f"{root.__name__}.") if info.ispkg
        )
    return sorted(name for name in candidates if hasattr(importlib.import_module(name), "__all__"))


PACKAGES = packages_with_all()


def exported(package: str) -> tuple[ModuleType, list[str]]:
    module = importlib.import_module(package)
    names: list[str] = list(module.__all__)
    return module, names


def test_the_packages_named_in_the_brief_are_among_those_checked() -> None:
    assert set(CHECKED) <= set(PACKAGES)


def ruff_order(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps `__all__` in: CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGES)
def test_all_is_sorted(package: str) -> None:
    _, names = exported(package)
    assert names == sorted(names, key=ruff_order)


@pytest.mark.parametrize("package", PACKAGES, ids=PACKAGES)
def test_every_name_in_all_resolves_once(package: str) -> None:
    module, names = exported(package)
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(module, name) is not None
