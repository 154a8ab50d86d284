# A stand-in for a nixpkgs checkout as a flake input: `import nixpkgs { system; overlays; config; }`
# gives a tiny package set (overlays applied as a fixed point) that records how it was made.
{ system, overlays ? [ ], config ? { } }:

let
  lib = import ./stub-lib.nix;
  derivation = attrs: attrs // {
    type = "derivation";
    outPath = "/nix/store/22222222222222222222222222222222-${attrs.pname or attrs.name}";
  };
  python = name: derivation { pname = name; };
  base = final: {
    inherit system;
    # How this set was imported: the claude-code overlay's unfree allowance shows up here.
    importedWith = { inherit config; };
    stdenv.hostPlatform.system = system;
    claude-code = derivation { pname = "claude-code"; fromSystem = system; allowedUnfree = config.allowUnfreePredicate or null; };
    callPackage = fn: args: import fn ({ inherit (final) lib python3Packages; } // args);
    lib = lib // {
      licenses.mit = "mit";
      platforms.linux = [ system ];
      fileset = {
        unions = paths: paths;
        toSource = { root, fileset }: { inherit root; files = map toString fileset; };
      };
    };
    python3Packages = {
      buildPythonApplication = attrs: derivation attrs;
      setuptools = python "setuptools";
      anyio = python "anyio";
      mcp = python "mcp";
      pydantic = python "pydantic";
      rich = python "rich";
      sqlmodel = python "sqlmodel";
      typer = python "typer";
    };
  };
  fix = f: let x = f x; in x;
in
fix (final: builtins.foldl' (prev: overlay: prev // overlay final prev) (base final) overlays)
