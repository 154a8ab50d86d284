"""The Nix side with the real nixpkgs module system: the service, the container template, the package, the flake.

nixpkgs cannot be fetched here, so nix/tests holds the real `lib` (vendored, nix/tests/nixpkgs-lib)
and a stand-in nixpkgs (nix/tests/nixpkgs) that declares the NixOS options and packages our files
touch with that lib's mkOption and types, and renders systemd units as NixOS does. Types, enums,
unknown options and assertions are therefore checked by the module system itself.
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
TESTS = ROOT / "nix" / "tests"
VENDORED_LIB = TESTS / "nixpkgs-lib"
NIX_FILES = sorted(
    p.relative_to(ROOT)
    for p in ROOT.rglob("*.nix")
    if not any(part.startswith(".") for part in p.parts[len(ROOT.parts) :]) and VENDORED_LIB not in p.parents
)


@pytest.fixture(scope="module")
def nix_instantiate() -> str:
    found = shutil.which("nix-instantiate")
    if found is None:
        pytest.fail("nix-instantiate is not installed: apt-get install nix-bin (.ci/run does)")
    return found


def nix_eval(nix_instantiate: str, file: str, *args: str) -> subprocess.CompletedProcess[str]:
    # --readonly-mode: paths are hashed, never copied into a store.
    return subprocess.run(
        [nix_instantiate, "--eval", "--strict", "--json", "--readonly-mode", str(TESTS / file), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def evaluate(nix_instantiate: str, file: str, *args: str) -> Any:
    result = nix_eval(nix_instantiate, file, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def refusal(nix_instantiate: str, file: str, *args: str) -> str:
    """The error a wrong configuration gets, without nix's trace hint."""
    result = nix_eval(nix_instantiate, file, *args)
    assert result.returncode != 0, f"evaluated although it should not: {result.stdout[:200]}"
    return result.stderr


def unit_lines(unit: str) -> list[str]:
    return [line for line in unit.splitlines() if line]


def environment(unit: str) -> dict[str, str]:
    pairs = (
        json.loads(line.removeprefix("Environment=")) for line in unit.splitlines() if line.startswith("Environment=")
    )
    return dict(pair.split("=", 1) for pair in pairs)


@pytest.fixture(scope="module")
def host(nix_instantiate: str) -> dict[str, Any]:
    return evaluate(
        nix_instantiate,
        "eval-host.nix",
        "--arg",
        "host",
        '{ services.hyperhive.claudeConfigDir = "/var/lib/hyperhive/claude"; }',
    )


@pytest.fixture(scope="module")
def flake(nix_instantiate: str) -> dict[str, Any]:
    return evaluate(nix_instantiate, "eval-flake.nix")


def agent(nix_instantiate: str, host_name: str, settings: str = "{ }") -> dict[str, Any]:
    return evaluate(nix_instantiate, "eval-agent.nix", "--argstr", "hostName", host_name, "--arg", "agent", settings)


def package(nix_instantiate: str, python_versions: str = "{ }") -> dict[str, Any]:
    return evaluate(nix_instantiate, "eval-package.nix", "--arg", "pythonVersions", python_versions)


def test_the_repo_has_the_nix_files_the_issue_asks_for() -> None:
    assert {"flake.nix", "nix/package.nix", "nix/modules/hyperhive.nix", "nix/templates/agent-base.nix"} <= {
        str(p) for p in NIX_FILES
    }


@pytest.mark.parametrize("path", NIX_FILES, ids=[str(p) for p in NIX_FILES])
def test_every_nix_file_parses(nix_instantiate: str, path: Path) -> None:
    result = subprocess.run([nix_instantiate, "--parse", str(ROOT / path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_vendored_lib_is_nixpkgs_own_with_its_licence() -> None:
    assert (VENDORED_LIB / "lib" / "modules.nix").is_file()
    assert (VENDORED_LIB / "COPYING").read_text().startswith("Copyright (c) 2003-")
    assert "de42d44212d207476489bce163375d8306a26d59" in (VENDORED_LIB / "README.md").read_text()


# The service.


def test_the_service_unit_runs_hivectl_serve_with_the_nixos_backend(host: dict[str, Any]) -> None:
    [exec_start] = [line for line in unit_lines(host["unit"]) if line.startswith("ExecStart=")]
    argv = exec_start.removeprefix("ExecStart=").split()
    assert argv[0] == f"{host['package']}/bin/hivectl"
    assert argv[1:11] == [
        "--run-dir",
        "/run/hyperhive",
        "--state-dir",
        "/var/lib/hyperhive",
        "serve",
        "--backend",
        "nixos",
        "--nixos-template",
        argv[9],
        "--claude-config-dir",
    ]
    assert re.fullmatch(r"/nix/store/[0-9a-f]{32}-hyperhive-agent\.nix", argv[9])
    assert argv[11:] == ["/var/lib/hyperhive/claude"]


def test_the_service_builds_containers_from_the_flakes_nixpkgs(host: dict[str, Any]) -> None:
    env = environment(host["unit"])
    assert env["NIX_PATH"] == host["flakeNixPath"]
    assert re.fullmatch(r"nixpkgs=/nix/store/[0-9a-z]{32}-nixpkgs", env["NIX_PATH"])


def test_the_service_finds_nixos_container_keeps_its_run_dir_and_restarts_on_failure(host: dict[str, Any]) -> None:
    lines = unit_lines(host["unit"])
    path = environment(host["unit"])["PATH"].split(":")
    # nixos-container lives in the system profile; NixOS adds its basic tools after it.
    assert path[0] == "/run/current-system/sw/bin"
    assert any(p.endswith("-systemd-258.2/bin") for p in path)
    assert {
        "RuntimeDirectory=hyperhive",
        "RuntimeDirectoryPreserve=yes",
        "RuntimeDirectoryMode=0700",
        "StateDirectory=hyperhive",
        "Restart=on-failure",
        "RestartSec=5",
        "LimitNOFILE=65536",
        "After=network.target",
        "WantedBy=multi-user.target",
    } <= set(lines)
    assert lines.index("[Install]") > lines.index("[Service]") > lines.index("[Unit]")


def test_the_dashboard_address_and_manager_switch_reach_the_daemon(nix_instantiate: str, host: dict[str, Any]) -> None:
    env = environment(host["unit"])
    assert (env["HYPERHIVE_DASHBOARD"], env["HYPERHIVE_MANAGER"]) == ("127.0.0.1:8420", "0")
    other = evaluate(
        nix_instantiate,
        "eval-host.nix",
        "--arg",
        "host",
        '{ services.hyperhive = { manager.enable = true; dashboard.address = "127.0.0.1:9000"; }; }',
    )
    env = environment(other["unit"])
    assert (env["HYPERHIVE_DASHBOARD"], env["HYPERHIVE_MANAGER"]) == ("127.0.0.1:9000", "1")


def test_the_database_url_password_file_and_host_name_reach_the_daemon(nix_instantiate: str) -> None:
    settings = (
        '{ services.hyperhive.database = { url = "postgresql://hive_a@db.example/hive?sslmode=verify-full"; '
        'passwordFile = "/run/secrets/pgpass"; hostName = "host-a"; }; '
        'services.hyperhive.desiredRemote = "ssh://git@git.example/hive.git"; }'
    )
    shared = evaluate(nix_instantiate, "eval-host.nix", "--arg", "host", settings)
    env = environment(shared["unit"])
    assert (env["HYPERHIVE_DATABASE"], env["PGPASSFILE"], env["HYPERHIVE_HOST_NAME"]) == (
        "postgresql://hive_a@db.example/hive?sslmode=verify-full",
        "/run/secrets/pgpass",
        "host-a",
    )
    assert env["HYPERHIVE_DESIRED_REMOTE"] == "ssh://git@git.example/hive.git"
    assert "HYPERHIVE_DATABASE" not in environment(
        evaluate(nix_instantiate, "eval-host.nix", "--arg", "host", "{ }")["unit"]
    )


def test_a_database_url_with_a_password_is_refused_by_the_module(nix_instantiate: str) -> None:
    error = refusal(
        nix_instantiate,
        "eval-host.nix",
        "--arg",
        "host",
        '{ services.hyperhive.database.url = "postgresql://hive_a:s3cret@db.example/hive"; }',
    )
    assert "must hold no password" in error


def test_the_local_backend_gets_no_container_template_and_no_nix_path(nix_instantiate: str) -> None:
    local = evaluate(nix_instantiate, "eval-host.nix", "--arg", "host", '{ services.hyperhive.backend = "local"; }')
    [exec_start] = [line for line in unit_lines(local["unit"]) if line.startswith("ExecStart=")]
    assert exec_start.endswith(" serve --backend local")
    assert "NIX_PATH" not in environment(local["unit"])


def test_containers_over_their_memory_limit_are_stopped_whole(nix_instantiate: str, host: dict[str, Any]) -> None:
    # container@.service delegates its cgroup, so systemd's own default there would be `continue`.
    assert "OOMPolicy=stop" in unit_lines(host["containerUnit"])
    # A host may choose otherwise; with the local backend there are no containers to configure.
    own = evaluate(
        nix_instantiate,
        "eval-host.nix",
        "--arg",
        "host",
        '{ systemd.services."container@".serviceConfig.OOMPolicy = "kill"; }',
    )
    assert "OOMPolicy=kill" in unit_lines(own["containerUnit"])
    local = evaluate(nix_instantiate, "eval-host.nix", "--arg", "host", '{ services.hyperhive.backend = "local"; }')
    assert local["containerUnit"] is None


def test_a_disabled_service_configures_nothing(nix_instantiate: str) -> None:
    off = evaluate(nix_instantiate, "eval-host.nix", "--arg", "host", "{ services.hyperhive.enable = false; }")
    assert (off["unit"], off["systemPackages"], off["variables"]) == (None, [], {})


def test_the_operator_gets_hivectl_pointed_at_the_system_hive(host: dict[str, Any]) -> None:
    assert host["systemPackages"] == ["hyperhive-0.1.0"]
    assert host["variables"] == {"HYPERHIVE_RUN_DIR": "/run/hyperhive"}


def test_containers_get_the_template_and_the_hosts_packages_by_store_path(host: dict[str, Any]) -> None:
    template: str = host["template"]
    assert re.search(r"imports = \[ /nix/store/[0-9a-z]{32}-agent-base\.nix \];", template)
    assert f'hyperhive.agent.package = builtins.storePath "{host["package"]}";' in template
    assert 'hyperhive.agent.claudePackage = builtins.storePath "/nix/store/' in template


def test_the_flakes_module_defaults_to_the_flakes_packages_and_nixpkgs(host: dict[str, Any]) -> None:
    assert host["package"] == host["flakePackage"]
    assert host["claudePackage"] == "claude-code-2.1.31"  # nixpkgs-unstable's
    assert host["nixpkgs"] == host["flakeNixpkgs"]


def test_the_module_alone_builds_from_the_hosts_nixpkgs_which_must_allow_claude_code(nix_instantiate: str) -> None:
    allowed = '{ nixpkgs.config.allowUnfreePredicate = pkg: pkg.pname or "" == "claude-code"; }'
    alone = evaluate(nix_instantiate, "eval-host.nix", "--arg", "flake", "false", "--arg", "host", allowed)
    assert alone["claudePackage"] == "claude-code-2.0.14"  # the host's (stable)
    assert alone["nixpkgs"] == alone["flakeNixpkgs"]  # pkgs.path: here the same stand-in
    assert alone["package"].endswith("-hyperhive-0.1.0")
    error = refusal(nix_instantiate, "eval-host.nix", "--arg", "flake", "false", "--arg", "host", "{ }")
    assert (
        "Package \u2018claude-code-2.0.14\u2019 has an unfree license (\u2018unfree\u2019), refusing to evaluate."
        in error
    )


def test_the_module_leaves_a_hosts_read_only_pkgs_alone(nix_instantiate: str) -> None:
    with_pkgs = evaluate(nix_instantiate, "eval-host.nix", "--arg", "readOnlyPkgs", "true", "--arg", "host", "{ }")
    assert with_pkgs["system"].endswith("-nixos-system-nixos-25.11")
    assert with_pkgs["package"] == with_pkgs["flakePackage"]
    # What the module used to do (set nixpkgs.overlays) is refused on such a host.
    overlays = "{ nixpkgs.overlays = [ (final: prev: { }) ]; }"
    error = refusal(nix_instantiate, "eval-host.nix", "--arg", "readOnlyPkgs", "true", "--arg", "host", overlays)
    assert "nixpkgs.overlays is set to read-only" in error


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        (
            'backend = "docker";',
            'A definition for option `services.hyperhive.backend\' is not of type `one of "nixos", "local"\'.',
        ),
        ("stateDir = 42;", "A definition for option `services.hyperhive.stateDir' is not of type `string'."),
        (
            'extraArgs = "--verbose";',
            "A definition for option `services.hyperhive.extraArgs' is not of type `list of string'.",
        ),
        (
            "claudeConfigDir = true;",
            "A definition for option `services.hyperhive.claudeConfigDir' is not of type `null or string'.",
        ),
        ('package = "hyperhive";', "A definition for option `services.hyperhive.package' is not of type `package'."),
        (
            'nixpkgs = "nixpkgs";',
            "A definition for option `services.hyperhive.nixpkgs' is not of type `absolute path'.",
        ),
        (
            'manager.enable = "yes";',
            "A definition for option `services.hyperhive.manager.enable' is not of type `boolean'.",
        ),
        ('statedir = "/var/lib/hive";', "The option `services.hyperhive.statedir' does not exist."),
        (
            'stateDir = "/srv/hive"; runDir = "/tmp/hive";',
            "Failed assertions:\n       - services.hyperhive.stateDir must be under /var/lib/\n"
            "       - services.hyperhive.runDir must be under /run/",
        ),
    ],
    ids=["enum", "str", "list", "null-or-str", "package", "path", "bool", "unknown-option", "assertions"],
)
def test_wrong_service_settings_are_refused_by_the_module_system(
    nix_instantiate: str, setting: str, error: str
) -> None:
    assert error in refusal(
        nix_instantiate, "eval-host.nix", "--arg", "host", f"{{ services.hyperhive = {{ {setting} }}; }}"
    )


# The container template.


@pytest.mark.parametrize(
    ("host_name", "name", "program"),
    [("h-alice", "alice", "hive-agent"), ("hm1nd", "hm1nd", "hive-mind")],
    ids=["agent", "manager"],
)
def test_a_container_runs_its_turn_loop_against_the_bound_socket(
    nix_instantiate: str, host_name: str, name: str, program: str
) -> None:
    container = agent(nix_instantiate, host_name)
    assert container["isNspawnContainer"] is True
    lines = unit_lines(container["text"])
    [exec_start] = [line for line in lines if line.startswith("ExecStart=")]
    assert re.fullmatch(rf"ExecStart=/nix/store/[0-9a-f]{{32}}-hyperhive-0\.1\.0/bin/{program} serve", exec_start)
    env = environment(container["text"])
    assert {k: env[k] for k in ("HIVE_AGENT_NAME", "HIVE_SOCKET", "HOME")} == {
        "HIVE_AGENT_NAME": name,
        "HIVE_SOCKET": "/run/hive/mcp.sock",
        "HOME": "/root",
    }
    assert {"EnvironmentFile=-/run/hive/agent.env", "Restart=always", "WantedBy=multi-user.target"} <= set(lines)


def test_a_container_allows_claude_code_and_no_other_unfree_package(nix_instantiate: str) -> None:
    container = agent(nix_instantiate, "h-alice")
    assert (container["allowsClaudeCode"], container["allowsOtherUnfree"]) == (True, False)


def test_an_agents_own_packages_claude_settings_and_network_reach_its_container(nix_instantiate: str) -> None:
    plain = agent(nix_instantiate, "h-alice")
    tooled = agent(
        nix_instantiate,
        "h-bob",
        '{ extraPackages = [ "git" "ripgrep" ]; network = "private"; '
        'claudeSettings.permissions.allow = [ "Bash(git:*)" ]; }',
    )
    assert plain["systemPackages"][2:] == []
    assert tooled["systemPackages"][2:] == ["git-2.51.2", "ripgrep-15.1.0"]
    path = environment(tooled["text"])["PATH"]
    assert "-git-2.51.2/bin:" in path
    assert "-git-2.51.2/bin" not in environment(plain["text"])["PATH"]
    assert plain["etc"] == {}
    assert json.loads(tooled["etc"]["claude-code/managed-settings.json"]) == {"permissions": {"allow": ["Bash(git:*)"]}}
    assert (plain["useHostResolvConf"], tooled["useHostResolvConf"]) == (True, False)


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (
            '{ role = "boss"; }',
            'A definition for option `hyperhive.agent.role\' is not of type `one of "agent", "manager"\'.',
        ),
        (
            '{ network = "none"; }',
            'A definition for option `hyperhive.agent.network\' is not of type `one of "host", "private"\'.',
        ),
        (
            '{ extraPackages = [ "no-such-tool" ]; }',
            "hyperhive.agent.extraPackages: nixpkgs has no package `no-such-tool'",
        ),
        (
            "{ extraPackages = [ 42 ]; }",
            'A definition for option `hyperhive.agent.extraPackages."[definition 1-entry 1]"\' is not of type',
        ),
        (
            '{ claudeSettings = "sonnet"; }',
            "A definition for option `hyperhive.agent.claudeSettings' is not of type `attribute set of anything'.",
        ),
        ("{ colour = 1; }", "The option `hyperhive.agent.colour' does not exist."),
    ],
    ids=["role", "network", "unknown-package", "package-type", "claude-settings", "unknown-option"],
)
def test_wrong_agent_settings_are_refused_by_the_module_system(nix_instantiate: str, settings: str, error: str) -> None:
    assert error in refusal(
        nix_instantiate, "eval-agent.nix", "--argstr", "hostName", "h-alice", "--arg", "agent", settings
    )


# The package.


def test_the_package_is_built_from_pyproject(nix_instantiate: str) -> None:
    built = package(nix_instantiate)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (built["pname"], built["version"], built["pyproject"]) == (pyproject["name"], pyproject["version"], True)
    assert built["buildSystem"] == ["setuptools"]
    wanted = sorted(re.split(r"[<>=!~ \[]", dep, maxsplit=1)[0] for dep in pyproject["dependencies"])
    assert [d["pname"] for d in built["dependencies"]] == wanted
    assert built["mainProgram"] == "hivectl"
    assert built["pythonImportsCheck"] == ["hyperhive_core", "hyperhive_agent", "hyperhive_mind"]
    # pyproject.toml, README.md and the three packages; not the tests, nor nix/, nor caches.
    assert built["keeps"] == [True, True, True, True, True, False, False, False, False]


def test_against_nixos_25_11_mcp_2_and_what_it_needs_come_from_the_lock(nix_instantiate: str) -> None:
    built = package(nix_instantiate)
    pins = json.loads((ROOT / "nix" / "python-pins.json").read_text())["packages"]
    # The stand-in's Python packages are like nixos-25.11's: mcp 1.x, no mcp-types nor httpx2.
    assert built["fromLock"] == ["annotated-doc", "httpcore2", "httpx2", "idna", "mcp", "mcp-types"]
    for dependency in built["closure"]:
        name = dependency["pname"]
        if name in built["fromLock"]:
            assert dependency["version"] == pins[name]["version"]
            assert (dependency["url"], dependency["hash"]) == (pins[name]["wheel"]["url"], pins[name]["wheel"]["hash"])
        else:
            assert dependency["url"] is None  # nixpkgs' own
    [mcp] = [d for d in built["dependencies"] if d["pname"] == "mcp"]
    assert sorted(mcp["dependencies"]) == sorted(pins["mcp"]["dependencies"])


def test_a_nixpkgs_package_too_old_for_a_locked_one_is_built_from_the_lock_too(nix_instantiate: str) -> None:
    # mcp 2.3 (built from the lock) needs starlette >= 0.48.
    built = package(nix_instantiate, '{ starlette = "0.46.2"; }')
    assert "starlette" in built["fromLock"]
    [starlette] = [d for d in built["closure"] if d["pname"] == "starlette"]
    assert (
        starlette["version"]
        == json.loads((ROOT / "nix" / "python-pins.json").read_text())["packages"]["starlette"]["version"]
    )


def test_a_compiled_package_nixpkgs_cannot_supply_is_a_clear_error(nix_instantiate: str) -> None:
    # mcp 2.3 needs pydantic >= 2.12; the lock's pydantic pins pydantic-core exactly, which has no pure wheel.
    error = refusal(nix_instantiate, "eval-package.nix", "--arg", "pythonVersions", '{ pydantic = "2.11.7"; }')
    assert "hyperhive needs pydantic-core ==2.50.5 (the lock has 2.50.5), but this" in error
    assert "nixpkgs has pydantic-core 2.41.5 and pydantic-core has no pure-Python wheel" in error


# The flake.


def test_the_flake_has_the_outputs_the_issue_asks_for(flake: dict[str, Any]) -> None:
    assert flake["outputs"] == ["checks", "devShells", "nixosModules", "overlays", "packages"]
    assert flake["overlays"] == ["claude-code", "default"]
    assert flake["systems"] == ["aarch64-linux", "x86_64-linux"]
    assert flake["packages"] == ["claude-code", "default", "hyperhive"]
    assert flake["devShells"] == ["default"]
    assert set(flake["inputs"]) == {"nixpkgs", "nixpkgs-unstable"}


def test_the_flakes_checks_evaluate_the_module_and_template_with_nixos(flake: dict[str, Any]) -> None:
    checks = flake["checks"]
    assert set(checks) == {"agent-template", "module", "package"}
    assert checks["module"].endswith("-unit-hyperhive.service")
    assert checks["agent-template"].endswith("-unit-hyperhive-agent.service")
    assert checks["package"] == flake["package"]


def test_claude_code_comes_from_unstable_with_its_own_unfree_allowance(flake: dict[str, Any]) -> None:
    assert flake["claudeCode"] == {"name": "claude-code-2.1.31", "channel": "unstable"}
    assert flake["overlaidClaudeCode"] == flake["claudeCode"]


def test_the_overlay_gives_a_host_pkgs_hyperhive(flake: dict[str, Any]) -> None:
    assert flake["overlaidHyperhive"] == flake["package"]
