# A hyperhive container's NixOS configuration, evaluated by the real module system over the
# stand-in NixOS, as nixos-container's generated configuration.nix would have it; prints what
# tests/nix asserts on:
#   nix-instantiate --eval --strict --json --readonly-mode nix/tests/eval-agent.nix \
#     --argstr hostName h-alice [--arg agent '{ extraPackages = [ "git" ]; }']
# `agent` holds the per-agent settings (hyperhive.agent.*) the daemon passes with --config.
{
  hostName,
  agent ? { },
}:

let
  pkgs = import ./nixpkgs { system = "x86_64-linux"; };
  eval = import ./nixpkgs/nixos/lib/eval-config.nix {
    system = "x86_64-linux";
    modules = [
      ./agent-template.nix
      {
        # What nixos-container writes into every container's configuration.nix.
        boot.isContainer = true;
        networking.hostName = pkgs.lib.mkDefault hostName;
        networking.useDHCP = false;
        hyperhive.agent = agent;
      }
    ];
  };
  inherit (eval) config;
  unit = config.systemd.services.hyperhive-agent;
in
{
  system = toString config.system.build.toplevel;
  text = config.systemd.units."hyperhive-agent.service".text;
  inherit (unit) environment;
  inherit (config.networking) useHostResolvConf;
  isNspawnContainer = config.boot.isNspawnContainer;
  systemPackages = map (p: p.name) config.environment.systemPackages;
  etc = pkgs.lib.mapAttrs (_: file: file.text) config.environment.etc;
  allowsClaudeCode = config.nixpkgs.config.allowUnfreePredicate pkgs.claude-code;
  allowsOtherUnfree = config.nixpkgs.config.allowUnfreePredicate { pname = "vscode"; };
}
