"""nix/python-pins.json: the lock's run-time closure for the Nix package, every hash checked.

The pins are what ./scripts/lock derives from requirements.lock, so the Nix package builds the
same versions pip installs where nixpkgs lacks them; each pinned wheel's hash is checked against
the very file pip downloaded (and verified against the lock) into the wheelhouse.
"""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from scripts.pins import closure, sri
from tests.wheelhouse import ROOT, locked, pure_wheel, pyproject, wheelhouse

PINS = ROOT / "nix" / "python-pins.json"


@pytest.fixture(scope="module")
def wheels() -> Path:
    return wheelhouse()


@pytest.fixture(scope="module")
def pins() -> dict[str, Any]:
    return json.loads(PINS.read_text())


def test_the_pins_are_the_locks_run_time_closure(pins: dict[str, Any], wheels: Path) -> None:
    expected = closure(locked(), pyproject(), wheels)
    assert pins["requires"] == expected["requires"], "pyproject.toml changed: run ./scripts/lock"
    assert {name: {k: v for k, v in p.items() if k != "wheel"} for name, p in pins["packages"].items()} == expected[
        "packages"
    ], "requirements.lock changed: run ./scripts/lock"
    assert {"mcp", "mcp-types"} <= set(pins["packages"])


def test_every_pinned_wheel_hash_matches_the_file_pip_downloaded(pins: dict[str, Any], wheels: Path) -> None:
    lock = locked()
    checked: list[str] = []
    for name, package in pins["packages"].items():
        wheel: dict[str, str] | None = package["wheel"]
        if wheel is None:
            continue
        # The file pip downloads for the pinned version (hash-checked against the lock as it does).
        file = pure_wheel(name, package["version"], base64.b64decode(wheel["hash"].removeprefix("sha256-")).hex())
        url_path: str = urlparse(wheel["url"]).path
        assert file.name == Path(url_path).name
        digest = hashlib.sha256(file.read_bytes()).digest()
        assert wheel["hash"] == "sha256-" + base64.b64encode(digest).decode(), f"{name}: pinned hash is not the file's"
        assert digest.hex() in lock[name].hashes
        assert wheel["url"].startswith("https://files.pythonhosted.org/packages/")
        checked.append(name)
    # Only compiled packages (nixpkgs must have them) go without a wheel.
    assert {"mcp", "mcp-types", "httpx2", "httpcore2"} <= set(checked)
    assert {n for n, p in pins["packages"].items() if p["wheel"] is None} <= {
        "cffi",
        "cryptography",
        "pydantic-core",
        "rpds-py",
    }


def test_hashes_are_written_as_nix_does() -> None:
    # sha256 of nothing, as `nix hash file --type sha256 --sri /dev/null` prints it.
    assert sri(hashlib.sha256(b"").hexdigest()) == "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
