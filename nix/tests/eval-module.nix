# Evaluates hyperhive's NixOS module and container template against the stand-ins in this dir:
#   nix-instantiate --eval --strict --json --readonly-mode nix/tests/eval-module.nix
# and prints the settings tests/nix/test_nix.py asserts on.
let
  lib = import ./stub-lib.nix;
  pkgs = import ./stub-pkgs.nix;

  evalService = settings: lib.evalModule {
    module = import ../modules/hyperhive.nix;
    inherit pkgs;
    settings.services.hyperhive = settings;
  };
  service = settings: (evalService settings).out;

  container = hostName: (lib.evalModule {
    module = import ../templates/agent-base.nix;
    inherit pkgs;
    # What nixos-container's generated configuration.nix sets, and what the module's wrapper sets.
    settings = {
      networking.hostName = hostName;
      hyperhive.agent.package = pkgs.hyperhive;
    };
  }).out;

  enabled = service { enable = true; claudeConfigDir = "/var/lib/hyperhive/claude"; };
  unit = enabled.systemd.services.hyperhive;
  agentUnit = c: {
    inherit (c.systemd.services.hyperhive-agent) environment serviceConfig wantedBy;
    isNspawnContainer = c.boot.isNspawnContainer;
    allowsClaudeCode = c.nixpkgs.config.allowUnfreePredicate pkgs.claude-code;
    allowsOtherUnfree = c.nixpkgs.config.allowUnfreePredicate { pname = "vscode"; };
    systemPackages = map toString c.environment.systemPackages;
  };
in
{
  service = {
    inherit (unit) path wantedBy environment serviceConfig;
  };
  local = (service { enable = true; backend = "local"; }).systemd.services.hyperhive.serviceConfig.ExecStart;
  assertions = enabled.assertions;
  # The wrapper the containers are created from (--nixos-template).
  template = (evalService { enable = true; }).config.services.hyperhive.agentTemplate.text;
  badDirs = map (a: a.assertion) (service { enable = true; stateDir = "/srv/hive"; runDir = "/tmp/hive"; }).assertions;
  systemPackages = map toString enabled.environment.systemPackages;
  variables = enabled.environment.variables;
  disabled = service { enable = false; };
  agent = agentUnit (container "h-alice");
  manager = agentUnit (container "hm1nd");
}
