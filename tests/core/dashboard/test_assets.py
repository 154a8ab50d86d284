"""The dashboard's browser libraries ship in the package, as the manifest says, and nothing else is fetched."""

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from hyperhive_core.dashboard.app import STATIC_DIR

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = STATIC_DIR / "vendor" / "manifest.json"


def manifest_files() -> dict[str, str]:
    manifest = json.loads(MANIFEST.read_text())
    return {f"vendor/{r['file']}": r["sha256"] for p in manifest["packages"] for r in p["files"]}


def test_every_vendored_file_is_the_one_its_manifest_names() -> None:
    manifest = json.loads(MANIFEST.read_text())
    assert {p["npm"] for p in manifest["packages"]} == {"htmx.org", "@xterm/xterm", "@xterm/addon-fit", "uplot"}
    for package in manifest["packages"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["version"]), package  # exact versions only
        assert package["license"]
        assert package["integrity"].startswith("sha512-")
    for name, digest in manifest_files().items():
        assert hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest() == digest, name
    vendored = {str(p.relative_to(STATIC_DIR)) for p in (STATIC_DIR / "vendor").rglob("*") if p.is_file()}
    assert vendored == {*manifest_files(), "vendor/manifest.json"}


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for path in [*STATIC_DIR.glob("*.js"), *STATIC_DIR.glob("*.css"), Path(STATIC_DIR.parent / "pages.py")]:
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path
        assert 'fetch("http' not in text, path


def test_the_wheel_carries_the_assets(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("hyperhive-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
        prefix = "hyperhive_core/dashboard/static/"
        for name, digest in manifest_files().items():
            assert prefix + name in inside, name
            assert hashlib.sha256(archive.read(prefix + name)).hexdigest() == digest
        for name in ("app.js", "app.css", "vendor/manifest.json"):
            assert prefix + name in inside
