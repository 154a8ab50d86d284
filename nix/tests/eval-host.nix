# A NixOS host running hyperhive's service, evaluated by the real module system (the vendored lib)
# over the stand-in NixOS; prints what tests/nix asserts on:
#   nix-instantiate --eval --strict --json --readonly-mode nix/tests/eval-host.nix \
#     --arg host '{ services.hyperhive.backend = "local"; }' [--arg flake false] [--arg readOnlyPkgs true]
# `host` is one more NixOS module; `flake = false` imports nix/modules/hyperhive.nix alone
# instead of the flake's nixosModules.default; `readOnlyPkgs` makes the host one that hands NixOS
# a ready nixpkgs.pkgs with NixOS's read-only pkgs module. A wrong option value fails the
# evaluation with the module system's own error.
{
  host,
  flake ? true,
  readOnlyPkgs ? false,
}:

let
  outputs = import ./flake-outputs.nix;
  inherit (outputs.inputs) nixpkgs;
  eval = nixpkgs.lib.nixosSystem {
    # A host with read-only pkgs names its platform through them alone.
    system = if readOnlyPkgs then null else "x86_64-linux";
    modules = nixpkgs.lib.optionals readOnlyPkgs [
      ./nixpkgs/nixos/modules/misc/nixpkgs/read-only.nix
      { nixpkgs.pkgs = nixpkgs.legacyPackages.x86_64-linux; }
    ]
    ++ [
      (if flake then outputs.nixosModules.default else ../modules/hyperhive.nix)
      {
        boot.isNspawnContainer = true;
        services.hyperhive.enable = nixpkgs.lib.mkDefault true;
        system.stateVersion = "25.11";
      }
      host
    ];
  };
  inherit (eval) config;
  service = config.systemd.services.hyperhive or null;
in
{
  # Forcing the system's store path type-checks every option and runs every assertion.
  system = toString config.system.build.toplevel;
  unit = config.systemd.units."hyperhive.service".text or null;
  # The template of imperative containers, as far as hyperhive adds to it.
  containerUnit = config.systemd.units."container@.service".text or null;
  environment = if service == null then null else service.environment;
  template = if service == null then null else config.services.hyperhive.agentTemplate.text;
  systemPackages = map (p: p.name) config.environment.systemPackages;
  variables = config.environment.variables;
  # What the defaults resolve to, to compare with the flake's own outputs.
  package = toString config.services.hyperhive.package;
  claudePackage = config.services.hyperhive.claudePackage.name;
  nixpkgs = toString config.services.hyperhive.nixpkgs;
  flakePackage = toString outputs.packages.x86_64-linux.hyperhive;
  flakeNixpkgs = toString nixpkgs.outPath;
  # What NIX_PATH must say: the flake's nixpkgs input, as a store path.
  flakeNixPath = "nixpkgs=${nixpkgs.outPath}";
}
