"""requirements.lock: exact versions and hashes of every dependency, installed and nothing else.

pyproject.toml keeps ranges; the lock (./scripts/lock) pins what was tested. These tests show that
the ranges accept the lock, that a fresh install from the lock gets exactly the lock (pip
resolves it from scratch, offline, from the files it downloaded, checking every hash), and that
the environment the tests run in is that install.
"""

import json
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.wheelhouse import LOCK, locked, locked_here, pyproject, wheelhouse


@pytest.fixture(scope="module")
def wheels() -> Path:
    return wheelhouse()


def test_every_dependency_is_pinned_to_one_version_with_hashes() -> None:
    lock = locked()
    assert {"mcp", "mcp-types", "pydantic", "pytest", "pyright", "setuptools", "pip"} <= set(lock)
    assert all(entry.hashes for entry in lock.values())


@pytest.mark.parametrize(
    "group",
    ["dependencies", "dev", "build-system"],
    ids=["runtime", "dev-extra", "build-backend"],
)
def test_pyprojects_ranges_accept_every_locked_version(group: str) -> None:
    project = pyproject()
    requirements = {
        "dependencies": project["project"]["dependencies"],
        "dev": project["project"]["optional-dependencies"]["dev"],
        "build-system": project["build-system"]["requires"],
    }[group]
    lock = locked()
    for requirement in map(Requirement, requirements):
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not in the lock: run ./scripts/lock"
        assert requirement.specifier.contains(lock[name].version, prereleases=True), (
            f"the lock's {name} {lock[name].version} is outside pyproject's {requirement}: run ./scripts/lock"
        )


def test_a_fresh_install_from_the_lock_gets_exactly_the_lock(wheels: Path, short_tmpdir: Path) -> None:
    # What scripts/_setup.sh runs, resolved from nothing installed and without the network: pip
    # refuses any file whose hash the lock lacks and any dependency the lock does not pin.
    report = short_tmpdir / "report.json"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"),
            *("--report", str(report), "--require-hashes", "--only-binary=:all:"),
            *("--no-index", "--find-links", str(wheels), "-r", str(LOCK)),
        ],
        check=True,
        capture_output=True,
    )
    installs = json.loads(report.read_text())["install"]
    got = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    assert got == {name: entry.version for name, entry in locked_here().items()}
    for item in installs:
        name = canonicalize_name(item["metadata"]["name"])
        assert item["download_info"]["archive_info"]["hashes"]["sha256"] in locked()[name].hashes


def test_the_tests_run_in_an_environment_installed_from_the_lock() -> None:
    installed: dict[str, str] = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    installed.pop("hyperhive")  # the project itself, editable, from this checkout
    wanted = {name: entry.version for name, entry in locked_here().items()}
    assert {n: Version(v) for n, v in installed.items()} == {n: Version(v) for n, v in wanted.items()}, (
        "this venv is not requirements.lock: ./scripts/test re-creates .venv from it"
    )
