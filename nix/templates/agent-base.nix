# The NixOS configuration of every hyperhive container (h-<name> agents and the hm1nd manager).
#
# `nixos-container create h-alice --config-file <this file>` imports it into the container's
# configuration.nix, which also sets networking.hostName = "h-alice": the role (agent or manager)
# and the agent's name follow from the host name. The daemon binds the agent's socket dir at
# /run/hive (and, when configured, the shared claude login at /root/.claude) through
# EXTRA_NSPAWN_FLAGS, and writes /run/hive/agent.env with the agent's settings.
#
# The container is built with the host's <nixpkgs/nixos>, which does not carry hyperhive's
# overlay: the NixOS module hands the packages in through a small wrapper that sets
# hyperhive.agent.package and hyperhive.agent.claudePackage to the host's store paths.
{ config, lib, pkgs, ... }:

let
  cfg = config.hyperhive.agent;
  hostName = config.networking.hostName;
  isManager = cfg.role == "manager";
in
{
  options.hyperhive.agent = {
    role = lib.mkOption {
      type = lib.types.enum [ "agent" "manager" ];
      default = if hostName == "hm1nd" then "manager" else "agent";
      defaultText = lib.literalExpression ''if hostName == "hm1nd" then "manager" else "agent"'';
      description = "Whether this container runs an agent's turn loop (hive-agent) or the manager's (hive-mind).";
    };
    name = lib.mkOption {
      type = lib.types.str;
      default = if isManager then "hm1nd" else lib.removePrefix "h-" hostName;
      defaultText = lib.literalExpression ''lib.removePrefix "h-" hostName'';
      description = "The agent's name in the hive.";
    };
    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.hyperhive or (throw "hyperhive.agent.package: set it, or build the container with hyperhive's overlay");
      defaultText = lib.literalExpression "pkgs.hyperhive";
      description = "The hyperhive package (hive-agent, hive-mind).";
    };
    claudePackage = lib.mkOption {
      type = lib.types.package;
      default = pkgs.claude-code;
      defaultText = lib.literalExpression "pkgs.claude-code";
      description = "claude-code, which the agent's claude driver runs.";
    };
    socket = lib.mkOption {
      type = lib.types.str;
      default = "/run/hive/mcp.sock";
      description = "The agent's MCP socket, bound in from the host.";
    };
  };

  config = {
    boot.isNspawnContainer = true;

    # claude-code is unfree: allow it, and nothing else, by name.
    nixpkgs.config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) [ "claude-code" ];

    environment.systemPackages = [ cfg.package cfg.claudePackage ];

    systemd.services.hyperhive-agent = {
      description = "hyperhive ${cfg.role} ${cfg.name}";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      path = [ cfg.package cfg.claudePackage ];
      environment = {
        HIVE_AGENT_NAME = cfg.name;
        HIVE_SOCKET = cfg.socket;
        HOME = "/root";
      };
      serviceConfig = {
        # The socket comes from HIVE_SOCKET; until the host's daemon listens on it, the loop exits
        # and Restart brings it back.
        ExecStart = "${cfg.package}/bin/${if isManager then "hive-mind" else "hive-agent"} serve";
        # Written by the daemon into the bound socket dir: role, driver, turn timeout.
        EnvironmentFile = "-/run/hive/agent.env";
        WorkingDirectory = "/root";
        Restart = "always";
        RestartSec = 2;
      };
    };

    system.stateVersion = lib.mkDefault "25.11";
  };
}
