"""The Nix side: every .nix file parses, and the module, template and flake evaluate against stand-ins.

Nothing that needs nixpkgs can be evaluated offline, so nix/tests/ holds hand-written stand-ins for
`lib`, `pkgs` and the flake inputs; the flake's own checks evaluate the same files against nixpkgs.
"""

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NIX_FILES = sorted(
    p.relative_to(ROOT)
    for p in ROOT.rglob("*.nix")
    if not any(part.startswith(".") for part in p.parts[len(ROOT.parts) :])
)


@pytest.fixture(scope="module")
def nix_instantiate() -> str:
    found = shutil.which("nix-instantiate")
    if found is None:
        pytest.fail("nix-instantiate is not installed: apt-get install nix-bin (.ci/run does)")
    return found


def evaluate(nix_instantiate: str, file: str) -> dict[str, Any]:
    # --readonly-mode: paths are hashed, never copied into a store.
    result = subprocess.run(
        [nix_instantiate, "--eval", "--strict", "--json", "--readonly-mode", str(ROOT / file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def module(nix_instantiate: str) -> dict[str, Any]:
    return evaluate(nix_instantiate, "nix/tests/eval-module.nix")


@pytest.fixture(scope="module")
def flake(nix_instantiate: str) -> dict[str, Any]:
    return evaluate(nix_instantiate, "nix/tests/eval-flake.nix")


def test_the_repo_has_the_nix_files_the_issue_asks_for() -> None:
    assert {"flake.nix", "nix/package.nix", "nix/modules/hyperhive.nix", "nix/templates/agent-base.nix"} <= {
        str(p) for p in NIX_FILES
    }


@pytest.mark.parametrize("path", NIX_FILES, ids=[str(p) for p in NIX_FILES])
def test_every_nix_file_parses(nix_instantiate: str, path: Path) -> None:
    result = subprocess.run([nix_instantiate, "--parse", str(ROOT / path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_service_runs_hivectl_serve_with_the_nixos_backend(module: dict[str, Any]) -> None:
    argv = module["service"]["serviceConfig"]["ExecStart"].split()
    assert argv[0].endswith("-hyperhive-0.1.0/bin/hivectl'")
    assert argv[1:] == [
        "'--run-dir'",
        "'/run/hyperhive'",
        "'--state-dir'",
        "'/var/lib/hyperhive'",
        "'serve'",
        "'--backend'",
        "'nixos'",
        "'--nixos-template'",
        "'/nix/store/11111111111111111111111111111111-hyperhive-agent.nix'",
        "'--claude-config-dir'",
        "'/var/lib/hyperhive/claude'",
    ]


def test_the_service_finds_nixos_container_and_keeps_its_run_dir_across_restarts(module: dict[str, Any]) -> None:
    service = module["service"]
    assert service["path"] == ["/run/current-system/sw"]
    assert service["wantedBy"] == ["multi-user.target"]
    settings = service["serviceConfig"]
    assert {k: settings[k] for k in ("RuntimeDirectory", "RuntimeDirectoryPreserve", "StateDirectory", "Restart")} == {
        "RuntimeDirectory": "hyperhive",
        "RuntimeDirectoryPreserve": "yes",
        "StateDirectory": "hyperhive",
        "Restart": "on-failure",
    }


def test_the_dashboard_address_and_manager_switch_reach_the_daemon(module: dict[str, Any]) -> None:
    assert module["service"]["environment"] == {"HYPERHIVE_DASHBOARD": "127.0.0.1:8420", "HYPERHIVE_MANAGER": "0"}


def test_the_local_backend_gets_no_container_template(module: dict[str, Any]) -> None:
    assert module["local"].endswith("'serve' '--backend' 'local'")


def test_dirs_outside_what_systemd_manages_are_refused(module: dict[str, Any]) -> None:
    assert [a["assertion"] for a in module["assertions"]] == [True, True]
    assert module["badDirs"] == [False, False]


def test_a_disabled_service_configures_nothing(module: dict[str, Any]) -> None:
    assert module["disabled"] == {}


def test_the_operator_gets_hivectl_pointed_at_the_system_hive(module: dict[str, Any]) -> None:
    assert [p.rsplit("-", 2)[-2] for p in module["systemPackages"]] == ["hyperhive"]
    assert module["variables"] == {"HYPERHIVE_RUN_DIR": "/run/hyperhive"}


def test_containers_get_the_template_and_the_hosts_packages_by_store_path(module: dict[str, Any]) -> None:
    template: str = module["template"]
    assert "-agent-base.nix ];" in template
    assert 'hyperhive.agent.package = builtins.storePath "/nix/store/' in template
    assert 'hyperhive.agent.claudePackage = builtins.storePath "/nix/store/' in template


@pytest.mark.parametrize(
    ("who", "name", "program"),
    [("agent", "alice", "hive-agent"), ("manager", "hm1nd", "hive-mind")],
    ids=["agent", "manager"],
)
def test_a_container_runs_its_turn_loop_against_the_bound_socket(
    module: dict[str, Any], who: str, name: str, program: str
) -> None:
    unit = module[who]
    assert unit["isNspawnContainer"] is True
    assert unit["serviceConfig"]["ExecStart"].endswith(f"-hyperhive-0.1.0/bin/{program} serve")
    assert unit["environment"] == {"HIVE_AGENT_NAME": name, "HIVE_SOCKET": "/run/hive/mcp.sock", "HOME": "/root"}
    assert unit["serviceConfig"]["EnvironmentFile"] == "-/run/hive/agent.env"
    assert unit["wantedBy"] == ["multi-user.target"]


@pytest.mark.parametrize("who", ["agent", "manager"], ids=["agent", "manager"])
def test_a_container_allows_claude_code_and_no_other_unfree_package(module: dict[str, Any], who: str) -> None:
    assert (module[who]["allowsClaudeCode"], module[who]["allowsOtherUnfree"]) == (True, False)


def test_the_flake_has_the_outputs_the_issue_asks_for(flake: dict[str, Any]) -> None:
    assert flake["outputs"] == ["checks", "devShells", "nixosModules", "overlays", "packages"]
    assert flake["overlays"] == ["claude-code", "default"]
    assert flake["devShells"] == ["default"]
    assert flake["systems"] == ["aarch64-linux", "x86_64-linux"]
    assert set(flake["checks"]) == {"agent-template", "module", "package"}
    assert set(flake["inputs"]) == {"nixpkgs", "nixpkgs-unstable"}


def test_the_package_is_built_from_pyproject_with_nixpkgs_dependencies(flake: dict[str, Any]) -> None:
    package = flake["package"]
    assert (package["pname"], package["pyproject"], package["buildSystem"]) == ("hyperhive", True, ["setuptools"])
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = sorted(re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0] for dep in pyproject["project"]["dependencies"])
    assert package["dependencies"] == wanted
    assert package["mainProgram"] == "hivectl"
    assert {"pyproject.toml", "hyperhive_core", "hyperhive_agent", "hyperhive_mind"} <= set(package["src"])


def test_claude_code_comes_from_unstable_with_its_own_unfree_allowance(flake: dict[str, Any]) -> None:
    assert flake["claudeCode"] == {
        "channel": "unstable",
        "fromSystem": "x86_64-linux",
        "allowsClaudeCode": True,
        "allowsOtherUnfree": False,
    }


def test_the_module_output_brings_both_overlays(flake: dict[str, Any]) -> None:
    assert [Path(p).name for p in flake["moduleImports"]] == ["hyperhive.nix"]
    assert flake["moduleOverlays"] == 2
