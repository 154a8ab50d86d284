# The NixOS configuration of every hyperhive container (h-<name> agents and the hm1nd manager).
#
# The daemon creates each container with `nixos-container create h-alice --config '...'`: the
# container's configuration.nix imports the template the daemon was given (the NixOS module's
# wrapper around this file) and sets the agent's own settings (`hyperhive.agent.extraPackages`,
# `claudeSettings`, `network`), so two agents can have different tools. networking.hostName is
# the container's name: the role (agent or manager) and the agent's name follow from it. The
# daemon binds the agent's socket dir at /run/hive (and, when configured, the shared claude login
# at /root/.claude) through EXTRA_NSPAWN_FLAGS, and writes /run/hive/agent.env with its settings.
#
# nixos-container builds it from `<nixpkgs/nixos>`, i.e. the nixpkgs NIX_PATH names: the NixOS
# module sets that to the flake's pinned nixpkgs. That nixpkgs has no hyperhive, so the module's
# wrapper sets hyperhive.agent.package and hyperhive.agent.claudePackage to the host's store paths.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;
  cfg = config.hyperhive.agent;
  hostName = config.networking.hostName;
  isManager = cfg.role == "manager";
  # "git" or "python3Packages.numpy": an attribute path in this container's nixpkgs.
  fromNixpkgs =
    name:
    lib.attrByPath (lib.splitString "." name) (throw "hyperhive.agent.extraPackages: nixpkgs has no package `${name}'") pkgs;
in
{
  options.hyperhive.agent = {
    role = mkOption {
      type = types.enum [
        "agent"
        "manager"
      ];
      default = if hostName == "hm1nd" then "manager" else "agent";
      defaultText = lib.literalExpression ''if hostName == "hm1nd" then "manager" else "agent"'';
      description = "Whether this container runs an agent's turn loop (hive-agent) or the manager's (hive-mind).";
    };
    name = mkOption {
      type = types.str;
      default = if isManager then "hm1nd" else lib.removePrefix "h-" hostName;
      defaultText = lib.literalExpression ''lib.removePrefix "h-" hostName'';
      description = "The agent's name in the hive.";
    };
    package = mkOption {
      type = types.package;
      default = pkgs.hyperhive or (throw "hyperhive.agent.package: set it (the NixOS module's template does)");
      defaultText = lib.literalExpression "pkgs.hyperhive";
      description = "The hyperhive package (hive-agent, hive-mind).";
    };
    claudePackage = mkOption {
      type = types.package;
      default = pkgs.claude-code;
      defaultText = lib.literalExpression "pkgs.claude-code";
      description = "claude-code, which the agent's claude driver runs.";
    };
    socket = mkOption {
      type = types.str;
      default = "/run/hive/mcp.sock";
      description = "The agent's MCP socket, bound in from the host.";
    };
    extraPackages = mkOption {
      type = types.listOf (types.coercedTo types.str fromNixpkgs types.package);
      default = [ ];
      example = [
        "git"
        "ripgrep"
        "python3Packages.numpy"
      ];
      description = "This agent's own tools: packages, or attribute paths in nixpkgs, on its PATH.";
    };
    claudeSettings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      example = {
        model = "sonnet";
        permissions.allow = [ "Bash(git:*)" ];
      };
      description = ''
        claude-code settings for this agent alone, written to /etc/claude-code/managed-settings.json
        (the login in /root/.claude is shared by every agent; this file is not).
      '';
    };
    network = mkOption {
      type = types.enum [
        "host"
        "private"
      ];
      default = "host";
      description = ''
        Whether the container shares the host's network (the daemon writes PRIVATE_NETWORK=0; claude
        reaches its API) or has a private one with no route out.
      '';
    };
  };

  config = {
    boot.isNspawnContainer = true;

    # claude-code is unfree: allow it, and nothing else, by name.
    nixpkgs.config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) [ "claude-code" ];

    environment.systemPackages = [
      cfg.package
      cfg.claudePackage
    ]
    ++ cfg.extraPackages;

    environment.etc."claude-code/managed-settings.json" = lib.mkIf (cfg.claudeSettings != { }) {
      text = builtins.toJSON cfg.claudeSettings;
    };

    # A container uses the host's resolv.conf by default; in a private network namespace its
    # resolver (often 127.0.0.53) is not there.
    networking.useHostResolvConf = lib.mkIf (cfg.network == "private") false;

    systemd.services.hyperhive-agent = {
      description = "hyperhive ${cfg.role} ${cfg.name}";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      path = [
        cfg.package
        cfg.claudePackage
      ]
      ++ cfg.extraPackages;
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
