# flake.nix's outputs with the stand-in inputs (no network, no nixpkgs); prints what tests/nix
# asserts on, forcing the checks (which evaluate the module and template with nixosSystem):
#   nix-instantiate --eval --strict --json --readonly-mode nix/tests/eval-flake.nix
let
  outputs = import ./flake-outputs.nix;
  system = "x86_64-linux";
  overlaid = import ./nixpkgs {
    inherit system;
    overlays = [
      outputs.overlays.default
      outputs.overlays.claude-code
    ];
  };
  claude = pkg: {
    inherit (pkg) name;
    channel = pkg.nixpkgsChannel;
  };
in
{
  inputs = builtins.mapAttrs (_: input: input.url) outputs.declaredInputs;
  outputs = builtins.attrNames (
    removeAttrs outputs [
      "inputs"
      "description"
      "declaredInputs"
    ]
  );
  overlays = builtins.attrNames outputs.overlays;
  systems = builtins.attrNames outputs.packages;
  packages = builtins.attrNames outputs.packages.${system};
  devShells = builtins.attrNames outputs.devShells.${system};
  checks = builtins.mapAttrs (_: toString) outputs.checks.${system};
  package = toString outputs.packages.${system}.hyperhive;
  claudeCode = claude outputs.packages.${system}.claude-code;
  overlaidClaudeCode = claude overlaid.claude-code;
  overlaidHyperhive = toString overlaid.hyperhive;
}
