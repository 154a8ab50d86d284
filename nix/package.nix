# hyperhive as a Python application, built from pyproject.toml. Its dependencies come from
# nixpkgs where their versions fit and from requirements.lock's wheels where they do not (mcp 2.x
# and mcp-types, at least, against nixos-25.11): see python-deps.nix.
{
  lib,
  python3,
  fetchurl,
}:

let
  project = (lib.importTOML ../pyproject.toml).project;
  deps = import ./python-deps.nix { inherit lib python3 fetchurl; };
in
deps.python.pkgs.buildPythonApplication {
  pname = project.name;
  inherit (project) version;
  pyproject = true;

  # Only what the wheel is built from: editing tests or nix/ does not rebuild the package.
  src = lib.cleanSourceWith {
    name = "hyperhive-source";
    src = ../.;
    filter =
      path: _:
      let
        relative = lib.removePrefix "${toString ../.}/" (toString path);
      in
      baseNameOf path != "__pycache__"
      && (
        lib.elem relative [
          "pyproject.toml"
          "README.md"
        ]
        || lib.elem (lib.head (lib.splitString "/" relative)) [
          "hyperhive_core"
          "hyperhive_agent"
          "hyperhive_mind"
        ]
      );
  };

  build-system = [ deps.python.pkgs.setuptools ];
  inherit (deps) dependencies;

  pythonImportsCheck = [
    "hyperhive_core"
    "hyperhive_agent"
    "hyperhive_mind"
  ];

  passthru = {
    # Which dependencies were built from the lock's wheels rather than taken from nixpkgs.
    fromLock = deps.built;
    # The Python they live in, for a dev shell: python.withPackages (ps: [ ... ]).
    inherit (deps) python;
  };

  meta = {
    description = project.description;
    license = lib.licenses.mit;
    mainProgram = "hivectl";
    platforms = lib.platforms.linux;
  };
}
