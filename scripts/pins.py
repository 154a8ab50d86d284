"""requirements.lock -> nix/python-pins.json: the locked runtime closure, for nix/package.nix.

For every package hyperhive needs at run time on Linux (its `[project] dependencies`, followed
through each locked release's own requirements), the JSON holds the locked version, the URL and
SRI hash of its pure-Python wheel (null when it has none, e.g. pydantic-core), and the version
ranges it and hyperhive put on their dependencies. package.nix takes each package from nixpkgs
when nixpkgs' version fits those ranges and builds the pinned wheel otherwise.

    python -m scripts.pins requirements.lock pyproject.toml .cache/wheels nix/python-pins.json

Requirements are read from the wheels pip downloaded from the lock into the wheelhouse
(scripts/_setup.sh); only the wheels' URLs come from PyPI. Everything but `pure_wheel` is offline
and shared with the tests, which recompute the closure and check every hash against those files.
"""

import base64
import email.parser
import json
import re
import sys
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import Specifier
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

SIMPLE_JSON = "https://pypi.org/simple/{name}/"
SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json"
# hyperhive runs on Linux under CPython >= 3.11; a requirement counts when any of these matches.
ENVIRONMENTS = [
    {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "implementation_name": "cpython",
        "python_version": f"3.{minor}",
        "python_full_version": f"3.{minor}.0",
    }
    for machine in ("x86_64", "aarch64")
    for minor in (11, 12, 13, 14)
]
_LOCK_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)\s*(?:;\s*(?P<marker>.*?))?\s*(?:--hash|$)"
)
_HASH = re.compile(r"--hash=sha256:(?P<hex>[0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """One `name==version` entry of the lock with the sha256 of every file of that release."""

    name: str
    version: str
    hashes: frozenset[str]
    marker: str = ""


def read_lock(text: str) -> dict[str, LockedPackage]:
    """Parse a hashed requirements file (uv's or pip-compile's); names come back canonical.

    Raises:
        ValueError: an entry is not pinned with `==`, or has no hash.
    """
    packages: dict[str, LockedPackage] = {}
    # Joining continuation lines gives one logical line per requirement.
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _LOCK_LINE.match(line)
        if match is None:
            raise ValueError(f"lock line is not `name==version --hash=...`: {line[:80]!r}")
        name = canonicalize_name(match["name"])
        hashes = frozenset(h["hex"] for h in _HASH.finditer(line))
        if not hashes:
            raise ValueError(f"{name}=={match['version']} has no --hash in the lock")
        packages[name] = LockedPackage(name, match["version"], hashes, (match["marker"] or "").strip())
    return packages


def applies(requirement: Requirement, extras: Iterable[str] = ()) -> bool:
    """Whether a requirement holds on Linux/CPython >= 3.11 for one of `extras` (or none)."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**env, "extra": extra}) for env in ENVIRONMENTS for extra in ("", *extras))


def marker_applies(marker: str) -> bool:
    """Whether a lock entry's marker holds on Linux/CPython >= 3.11."""
    return not marker or any(Marker(marker).evaluate(dict(env)) for env in ENVIRONMENTS)


def constraint(specifier: Specifier) -> list[list[str]]:
    """A PEP 440 specifier as the [operator, version] pairs nix/python-deps.nix checks."""
    if specifier.operator == "~=":
        # ~=X.Y.Z means >=X.Y.Z and ==X.Y.*
        release = specifier.version.split(".")
        return [[">=", specifier.version], ["==", ".".join([*release[:-1], "*"])]]
    if specifier.operator == "===":
        return [["==", specifier.version]]
    return [[specifier.operator, specifier.version]]


def constraints(requirement: Requirement) -> list[list[str]]:
    """Every [operator, version] pair of a requirement, sorted for a stable file."""
    return sorted(pair for spec in requirement.specifier for pair in constraint(spec))


def project_requirements(pyproject: Mapping[str, Any]) -> list[Requirement]:
    """hyperhive's own run-time requirements, from `[project] dependencies`."""
    return [Requirement(r) for r in pyproject["project"]["dependencies"]]


def runtime_requirements(requires_dist: Iterable[str], extras: Iterable[str] = ()) -> list[Requirement]:
    """The requirements of a release that hold on Linux when it is installed with `extras`."""
    wanted = list(extras)
    return [r for r in map(Requirement, requires_dist) if applies(r, wanted)]


def sri(hex_digest: str) -> str:
    """A sha256 hex digest as Nix writes it (`sha256-<base64>`)."""
    return "sha256-" + base64.b64encode(bytes.fromhex(hex_digest)).decode()


def wheel_requirements(wheelhouse: Path, name: str, version: str) -> list[str]:
    """`Requires-Dist` of a release, read from its wheel in `wheelhouse` (pip downloaded it there).

    Raises:
        ValueError: the wheelhouse has no wheel of that release.
    """
    for path in sorted(wheelhouse.glob("*.whl")):
        wheel_name, wheel_version, _, _ = parse_wheel_filename(path.name)
        if wheel_name == name and str(wheel_version) == str(Version(version)):
            with zipfile.ZipFile(path) as archive:
                member = next(m for m in archive.namelist() if m.endswith(".dist-info/METADATA"))
                metadata = email.parser.BytesParser().parsebytes(archive.read(member))
            return metadata.get_all("Requires-Dist") or []
    raise ValueError(f"no wheel of {name}=={version} in {wheelhouse}; run ./scripts/test (it downloads the lock)")


def closure(lock: Mapping[str, LockedPackage], pyproject: Mapping[str, Any], wheelhouse: Path) -> dict[str, Any]:
    """Follow hyperhive's requirements through the locked releases (offline, from the wheelhouse).

    Returns hyperhive's own ranges (`requires`) and, per package of the run-time closure, its
    locked version and the ranges it puts on its dependencies. An extra (`pyjwt[crypto]`) is
    spelled out as the requirer's own dependencies, as nixpkgs does with `optional-dependencies`.

    Raises:
        ValueError: a package hyperhive needs is missing from the lock or the wheelhouse.
    """

    def requirements_of(name: str) -> list[Requirement]:
        if name not in lock:
            raise ValueError(f"{name} is needed at run time but is not in the lock; run ./scripts/lock")
        return [Requirement(r) for r in wheel_requirements(wheelhouse, name, lock[name].version)]

    def expand(requirements: Iterable[Requirement]) -> dict[str, list[list[str]]]:
        found: dict[str, list[list[str]]] = {}
        todo = list(requirements)
        while todo:
            requirement = todo.pop()
            dep = canonicalize_name(requirement.name)
            found[dep] = sorted(found.get(dep, []) + constraints(requirement))
            if requirement.extras:
                # Only what the extras add: the dep's own requirements are its own.
                todo += [r for r in requirements_of(dep) if applies(r, requirement.extras) and not applies(r)]
        return dict(sorted(found.items()))

    requires = expand(project_requirements(pyproject))
    packages: dict[str, Any] = {}
    pending = list(requires)
    while pending:
        name = pending.pop()
        if name in packages:
            continue
        dependencies = expand(r for r in requirements_of(name) if applies(r))
        packages[name] = {"version": lock[name].version, "dependencies": dependencies}
        pending += dependencies
    return {"requires": requires, "packages": dict(sorted(packages.items()))}


def pure_wheel(name: str, locked: LockedPackage) -> dict[str, str] | None:
    """The URL and SRI hash of the release's pure-Python wheel on PyPI, if it has one (network).

    Raises:
        ValueError: PyPI's wheel is not one the lock has a hash for.
    """
    request = urllib.request.Request(SIMPLE_JSON.format(name=name), headers={"Accept": SIMPLE_ACCEPT})
    with urllib.request.urlopen(request, timeout=60) as response:
        files: list[dict[str, Any]] = json.load(response)["files"]
    for file in files:
        if not file["filename"].endswith("-none-any.whl"):
            continue
        try:
            wheel_name, wheel_version, _, _ = parse_wheel_filename(file["filename"])
        except InvalidWheelFilename:
            continue  # old releases carry names today's rules refuse; never the locked one
        if wheel_name == name and str(wheel_version) == str(Version(locked.version)):
            if file["hashes"]["sha256"] not in locked.hashes:
                raise ValueError(f"PyPI's {file['filename']} is not one of the lock's files; run ./scripts/lock")
            return {"url": file["url"], "hash": sri(file["hashes"]["sha256"])}
    return None


def build_pins(lock: Mapping[str, LockedPackage], pyproject: Mapping[str, Any], wheelhouse: Path) -> dict[str, Any]:
    """The pins file's content: the closure, each package with its pure wheel (or null).

    Raises:
        ValueError: the lock, the wheelhouse and PyPI disagree.
    """
    found = closure(lock, pyproject, wheelhouse)
    for name, package in found["packages"].items():
        package["wheel"] = pure_wheel(name, lock[name])
    return {"_comment": "Generated by ./scripts/lock from requirements.lock; do not edit.", **found}


def main(argv: list[str]) -> None:
    """Write the pins file from a lock, a pyproject.toml and the wheelhouse pip filled from the lock."""
    lock_path, pyproject_path, wheelhouse, out_path = map(Path, argv)
    pins = build_pins(read_lock(lock_path.read_text()), tomllib.loads(pyproject_path.read_text()), wheelhouse)
    out_path.write_text(json.dumps(pins, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
