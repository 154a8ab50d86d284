# services.hyperhive: the hive daemon (`hivectl serve`) as a system service.
#
# With the nixos backend each agent is an imperative container h-<name> built from
# ../templates/agent-base.nix; the daemon binds the agent's socket dir (under the run dir) into it.
# The run dir survives restarts of the service (RuntimeDirectoryPreserve): running containers
# keep their bind sources, the daemon re-creates the sockets in them, and `hivectl rebuild NAME`
# reconciles a container whose binds changed.
#
# The module sets nothing under nixpkgs.* (no overlays): it works on hosts that hand NixOS a
# ready `nixpkgs.pkgs`. Its packages are options; the flake's nixosModules.default gives them the
# flake's own packages as defaults, and this file alone builds hyperhive from the host's pkgs.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.services.hyperhive;

  # The container is built from `nixpkgs` (NIX_PATH below), which has no hyperhive: hand it this
  # host's packages by store path, and the template by its own store copy.
  agentTemplate = pkgs.writeText "hyperhive-agent.nix" ''
    { ... }:
    {
      imports = [ ${../templates/agent-base.nix} ];
      hyperhive.agent.package = builtins.storePath "${cfg.package}";
      hyperhive.agent.claudePackage = builtins.storePath "${cfg.claudePackage}";
    }
  '';

  args =
    [
      "${cfg.package}/bin/hivectl"
      "--run-dir"
      cfg.runDir
      "--state-dir"
      cfg.stateDir
      "serve"
      "--backend"
      cfg.backend
    ]
    ++ lib.optionals (cfg.backend == "nixos") [ "--nixos-template" "${cfg.agentTemplate}" ]
    ++ lib.optionals (cfg.claudeConfigDir != null) [ "--claude-config-dir" cfg.claudeConfigDir ]
    ++ cfg.extraArgs;
in
{
  options.services.hyperhive = {
    enable = mkEnableOption "hyperhive, a hive of Claude Code agents in NixOS containers";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = lib.literalMD ''
        the flake's `packages.<system>.hyperhive` (built with the flake's pinned nixpkgs); with this
        file imported alone, `pkgs.callPackage ./nix/package.nix { }` (the host's nixpkgs)
      '';
      description = "The hyperhive package: hivectl for the daemon, hive-agent and hive-mind for the containers.";
    };

    claudePackage = mkOption {
      type = types.package;
      default = pkgs.claude-code;
      defaultText = lib.literalMD ''
        the flake's `packages.<system>.claude-code` (nixpkgs-unstable's, allowed as unfree by
        itself); with this file imported alone, `pkgs.claude-code` (the host must allow it)
      '';
      description = "claude-code for the containers.";
    };

    nixpkgs = mkOption {
      type = types.path;
      default = pkgs.path;
      defaultText = lib.literalMD ''
        the flake's pinned `nixpkgs` input; with this file imported alone, `pkgs.path` (the host's)
      '';
      description = ''
        The nixpkgs every agent container is built from: the service runs with
        NIX_PATH=nixpkgs=<this>, which nixos-container's `<nixpkgs/nixos>` resolves. Without it a
        container would be built from the host's channel, or not at all on a host without one.
      '';
    };

    backend = mkOption {
      type = types.enum [ "nixos" "local" ];
      default = "nixos";
      description = "Where agents run: NixOS containers, or bubblewrap sandboxes on the host.";
    };

    agentTemplate = mkOption {
      type = types.path;
      default = agentTemplate;
      defaultText = lib.literalMD "a wrapper around `nix/templates/agent-base.nix` that sets the packages";
      description = "The NixOS module every agent container is created from (nixos-container --config-file).";
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/hyperhive";
      description = "Messages, the desired hive and agent logs; must be under /var/lib (systemd's StateDirectory).";
    };

    runDir = mkOption {
      type = types.str;
      default = "/run/hyperhive";
      description = "host.sock and every agent's socket dir; must be under /run (systemd's RuntimeDirectory).";
    };

    dashboard.address = mkOption {
      type = types.str;
      default = "127.0.0.1:8420";
      description = "Where the daemon serves its dashboard (HOST:PORT); keep it on loopback.";
    };

    manager.enable = mkOption {
      type = types.bool;
      default = false;
      description = "Whether the hive runs its manager agent (hm1nd), whose lifecycle changes wait for approval.";
    };

    claudeConfigDir = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/hyperhive/claude";
      description = ''
        A host dir holding claude's login, bound into every container at /root/.claude so the
        operator logs in once. null: agents have no credentials and answer with the echo driver.
      '';
    };

    database = {
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "postgresql://hive_a@db.example/hive?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem";
        description = ''
          A PostgreSQL database the daemons of several hosts share (`hivectl serve --database`),
          with no password in it: that goes in `passwordFile`. null: SQLite in stateDir.
        '';
      };
      passwordFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/hyperhive-pgpass";
        description = ''
          A pgpass file (HOST:PORT:DBNAME:USER:PASSWORD, mode 0600) libpq reads the password from
          (PGPASSFILE); a path outside the Nix store, so the password never enters it.
        '';
      };
      hostName = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "This host's name in a hive of several hosts (`--host-name`); null: the machine's.";
      };
    };

    desiredRemote = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "ssh://git@git.example/ops/hive.git";
      description = ''
        A git URL holding the desired hive every host shares (`hivectl serve --desired-remote`): the
        state repo mirrors it and every change is pushed there first. No password in it (the Nix
        store is world-readable): give the service's user an SSH key instead.
        null: the state repo is this host's own.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "More arguments for `hivectl serve`.";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/var/lib/" cfg.stateDir;
        message = "services.hyperhive.stateDir must be under /var/lib/";
      }
      {
        assertion = lib.hasPrefix "/run/" cfg.runDir;
        message = "services.hyperhive.runDir must be under /run/";
      }
      {
        assertion = cfg.database.url == null || builtins.match "[^/]*//[^/@]*:[^/@]*@.*" cfg.database.url == null;
        message = "services.hyperhive.database.url must hold no password (it would be world-readable in the Nix store): use database.passwordFile";
      }
      {
        assertion = cfg.desiredRemote == null || builtins.match "[^/]*//[^/@]*:[^/@]*@.*" cfg.desiredRemote == null;
        message = "services.hyperhive.desiredRemote must hold no password (it would be world-readable in the Nix store): use an SSH key (the service user's ~/.ssh)";
      }
    ];

    environment.systemPackages = [ cfg.package ];
    # hivectl finds the system hive without flags.
    environment.variables.HYPERHIVE_RUN_DIR = cfg.runDir;

    # An agent's memory limit is its container unit's MemoryMax (the daemon sets it before every
    # start). container@.service delegates its cgroup, and systemd's OOMPolicy then defaults to
    # `continue`: the kernel would kill a process inside and the container run on. `stop` stops
    # the whole container, which the daemon reports as over its memory limit and restarts. This
    # is the template of imperative containers (hyperhive's); declarative ones have their own units.
    systemd.services."container@" = mkIf (cfg.backend == "nixos") {
      serviceConfig.OOMPolicy = lib.mkDefault "stop";
    };

    systemd.services.hyperhive = {
      description = "hyperhive daemon";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      # nixos-container lives in the system profile, not in a package the service could name.
      path = [ "/run/current-system/sw" ];
      environment = {
        # `hivectl serve --dashboard ADDR` and `--manager`, from the environment.
        HYPERHIVE_DASHBOARD = cfg.dashboard.address;
        HYPERHIVE_MANAGER = if cfg.manager.enable then "1" else "0";
      }
      // lib.optionalAttrs (cfg.database.url != null) { HYPERHIVE_DATABASE = cfg.database.url; }
      // lib.optionalAttrs (cfg.database.passwordFile != null) { PGPASSFILE = cfg.database.passwordFile; }
      // lib.optionalAttrs (cfg.database.hostName != null) { HYPERHIVE_HOST_NAME = cfg.database.hostName; }
      // lib.optionalAttrs (cfg.desiredRemote != null) { HYPERHIVE_DESIRED_REMOTE = cfg.desiredRemote; }
      // lib.optionalAttrs (cfg.backend == "nixos") {
        # nixos-container builds each container from <nixpkgs/nixos>: pin it, as the flake pins ours.
        NIX_PATH = "nixpkgs=${cfg.nixpkgs}";
      };
      serviceConfig = {
        ExecStart = lib.escapeShellArgs args;
        RuntimeDirectory = lib.removePrefix "/run/" cfg.runDir;
        # A restart must not wipe the run dir: running containers bind its agent dirs.
        RuntimeDirectoryPreserve = "yes";
        RuntimeDirectoryMode = "0700";
        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0700";
        Restart = "on-failure";
        RestartSec = 5;
        # Each agent may hold up to 32 connections to its socket; 1024 descriptors run out early.
        LimitNOFILE = 65536;
      };
    };
  };
}
