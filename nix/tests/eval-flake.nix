# Calls flake.nix's outputs with stand-in inputs (no network, no nixpkgs):
#   nix-instantiate --eval --strict --json --readonly-mode nix/tests/eval-flake.nix
# and prints what tests/nix/test_nix.py asserts on: the outputs' names, the package's recipe and
# which nixpkgs the claude-code overlay takes claude-code from.
let
  lib = import ./stub-lib.nix;
  input = outPath: {
    inherit outPath;
    lib = lib // {
      genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
      getName = pkg: pkg.pname;
    };
  };
  flake = import ../../flake.nix;
  nixpkgs = input ./stub-nixpkgs.nix;
  self = flake.outputs { inherit self nixpkgs; nixpkgs-unstable = input ./stub-nixpkgs-unstable.nix; };
  pkgs = import ./stub-nixpkgs.nix {
    system = "x86_64-linux";
    overlays = [ self.overlays.default self.overlays.claude-code ];
  };
  package = self.packages.x86_64-linux.default;
in
{
  inputs = builtins.mapAttrs (_: i: i.url) flake.inputs;
  outputs = builtins.attrNames self;
  overlays = builtins.attrNames self.overlays;
  systems = builtins.attrNames self.packages;
  checks = builtins.attrNames self.checks.x86_64-linux;
  devShells = builtins.attrNames self.devShells.x86_64-linux;
  moduleImports = map toString self.nixosModules.default.imports;
  moduleOverlays = builtins.length self.nixosModules.default.nixpkgs.overlays;
  package = {
    inherit (package) pname version pyproject pythonImportsCheck;
    buildSystem = map (p: p.pname) package.build-system;
    dependencies = map (p: p.pname) package.dependencies;
    mainProgram = package.meta.mainProgram;
    src = map (f: baseNameOf f) package.src.files;
  };
  claudeCode = {
    inherit (pkgs.claude-code) fromSystem;
    channel = pkgs.claude-code.channel or "stable";
    allowsClaudeCode = pkgs.claude-code.allowedUnfree { pname = "claude-code"; };
    allowsOtherUnfree = pkgs.claude-code.allowedUnfree { pname = "vscode"; };
  };
}
