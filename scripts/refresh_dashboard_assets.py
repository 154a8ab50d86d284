#!/usr/bin/env python3
"""Vendor the dashboard's browser libraries from npm at exact versions, and write their manifest.

    python3 scripts/refresh_dashboard_assets.py          # fetch the pinned versions again, rewrite files + manifest
    python3 scripts/refresh_dashboard_assets.py --check  # only check the committed files against the manifest

To move to a new version, change it in PACKAGES below and run the script: it runs `npm pack`
(the npm client, nothing installed, no scripts run), copies the few files the page loads into
hyperhive_core/dashboard/static/vendor/<name>/ with the package's LICENSE, and records in
manifest.json each package's version, license and npm integrity, and each file's sha256.
The daemon serves only these committed files: nothing is fetched at run time.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "hyperhive_core" / "dashboard" / "static" / "vendor"
MANIFEST = VENDOR / "manifest.json"

# npm package, exact version, the dir under vendor/, and the files the page needs (path in the tarball).
PACKAGES: list[tuple[str, str, str, list[str]]] = [
    ("htmx.org", "2.0.11", "htmx", ["dist/htmx.min.js"]),
    ("@xterm/xterm", "6.0.0", "xterm", ["lib/xterm.js", "css/xterm.css"]),
    ("@xterm/addon-fit", "0.11.0", "xterm-addon-fit", ["lib/addon-fit.js"]),
    ("uplot", "1.6.32", "uplot", ["dist/uPlot.iife.min.js", "dist/uPlot.min.css"]),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refresh() -> None:
    entries: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, folder, files in PACKAGES:
            spec = f"{name}@{version}"
            packed = subprocess.run(
                ["npm", "pack", "--json", "--pack-destination", tmp, spec],
                check=True,
                capture_output=True,
                text=True,
            )
            [info] = json.loads(packed.stdout)
            unpacked = Path(tmp) / folder
            with tarfile.open(Path(tmp) / info["filename"]) as tar:
                tar.extractall(unpacked, filter="data")
            package = unpacked / "package"
            meta = json.loads((package / "package.json").read_text())
            dest = VENDOR / folder
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            records: list[dict[str, str]] = []
            for source in [*files, "LICENSE"]:
                target = dest / Path(source).name
                shutil.copyfile(package / source, target)
                records.append({"file": f"{folder}/{target.name}", "from": source, "sha256": sha256(target)})
            entries.append(
                {
                    "npm": name,
                    "version": version,
                    "license": meta.get("license", "see LICENSE"),
                    "integrity": info["integrity"],
                    "files": records,
                }
            )
    manifest = {
        "about": "Browser libraries of the dashboard, vendored from npm at exact versions; served by the "
        "daemon, never fetched at run time. Refresh: python3 scripts/refresh_dashboard_assets.py",
        "packages": entries,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


def check() -> int:
    manifest = json.loads(MANIFEST.read_text())
    bad = [
        record["file"]
        for package in manifest["packages"]
        for record in package["files"]
        if not (VENDOR / record["file"]).is_file() or sha256(VENDOR / record["file"]) != record["sha256"]
    ]
    for file in bad:
        sys.stderr.write(f"{file}: missing or not the file the manifest names\n")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the committed files against the manifest")
    if parser.parse_args().check:
        return check()
    refresh()
    return check()


if __name__ == "__main__":
    sys.exit(main())
