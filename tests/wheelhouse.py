"""The lock and the wheels pip downloaded from it, for the tests that check hashes and installs.

scripts/_setup.sh downloads every file the lock pins for this machine into `.cache/wheels` (pip
checks each against the lock's hashes) and installs from there; the tests read those files
without the network. A wheelhouse that lacks a file is filled the same way first, and so are the
pure-Python wheels the Nix pins name where pip chose a compiled one here (SQLAlchemy's).
"""

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from scripts.pins import LockedPackage, read_lock

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
WHEELHOUSE = ROOT / ".cache" / "wheels"


def locked() -> dict[str, LockedPackage]:
    """Every entry of requirements.lock, by canonical name."""
    return read_lock(LOCK.read_text())


def locked_here() -> dict[str, LockedPackage]:
    """The entries this interpreter installs: those whose markers hold here (pywin32's do not)."""
    return {name: entry for name, entry in locked().items() if not entry.marker or Marker(entry.marker).evaluate()}


def pyproject() -> dict[str, Any]:
    """pyproject.toml, parsed."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def wheel_files() -> dict[tuple[str, str], Path]:
    """The wheelhouse's files by (canonical name, normalised version)."""
    found: dict[tuple[str, str], Path] = {}
    for path in WHEELHOUSE.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        found[(name, str(version))] = path
    return found


def wheelhouse() -> Path:
    """The wheelhouse, with a wheel of every lock entry for this machine (downloaded if one is missing)."""
    have = wheel_files() if WHEELHOUSE.is_dir() else {}
    missing = [n for n, e in locked_here().items() if (canonicalize_name(n), str(Version(e.version))) not in have]
    if missing:
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--only-binary=:all:"),
                *("--dest", str(WHEELHOUSE), "-r", str(LOCK)),
            ],
            check=True,
        )
    return WHEELHOUSE


def pure_wheel(name: str, version: str, sha256: str) -> Path:
    """The release's pure-Python wheel in the wheelhouse, downloaded (hash checked by pip) if it is not there."""
    wanted = (canonicalize_name(name), str(Version(version)))
    for path in WHEELHOUSE.glob("*-none-any.whl"):
        wheel_name, wheel_version, _, _ = parse_wheel_filename(path.name)
        if (wheel_name, str(wheel_version)) == wanted:
            return path
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirement:
        requirement.write(f"{name}=={version} --hash=sha256:{sha256}\n")
        requirement.flush()
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"),
                *("--platform", "any", "--implementation", "py", "--abi", "none", "--require-hashes"),
                *("--dest", str(WHEELHOUSE), "-r", requirement.name),
            ],
            check=True,
        )
    return pure_wheel(name, version, sha256)
