# nix/package.nix against the stand-in nixpkgs, whose Python packages are like nixos-25.11's
# unless `pythonVersions` says otherwise (null: nixpkgs lacks it); prints what tests/nix asserts on:
#   nix-instantiate --eval --strict --json --readonly-mode nix/tests/eval-package.nix \
#     --arg pythonVersions '{ starlette = "0.40.0"; }'
{ pythonVersions }:

let
  pkgs = import ./nixpkgs {
    system = "x86_64-linux";
    inherit pythonVersions;
  };
  package = pkgs.callPackage ../package.nix { };
  dependency = d: {
    inherit (d) pname version;
    url = d.src.url or null;
    hash = d.src.hash or null;
    dependencies = map (dep: dep.pname) (d.dependencies or [ ]);
  };
  python = package.python.pkgs;
in
{
  inherit (package) pname version pyproject pythonImportsCheck fromLock;
  name = package.name;
  buildSystem = map (p: p.pname) package.build-system;
  mainProgram = package.meta.mainProgram;
  dependencies = map dependency package.dependencies;
  # Every package of the closure as the package's Python has it.
  closure = map (name: dependency python.${name}) (builtins.attrNames (pkgs.lib.importJSON ../python-pins.json).packages);
  # What the source keeps, by path relative to the repo.
  keeps = map (f: package.src.filter (toString ../.. + "/${f}") "regular") [
    "pyproject.toml"
    "README.md"
    "hyperhive_core/hive.py"
    "hyperhive_agent/bridge.py"
    "hyperhive_mind/prompt.py"
    "tests/conftest.py"
    "nix/package.nix"
    "flake.nix"
    "hyperhive_core/__pycache__"
  ];
}
