{
  description = "hyperhive: a hive of Claude Code agents in NixOS containers, talking through MCP";

  # This file only wires inputs to outputs; the package, module and template live in nix/.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    # claude-code moves fast; the stable channel lags too far behind it.
    nixpkgs-unstable.url = "github:NixOS/nixpkgs/nixos-unstable";
  };

  outputs = { self, nixpkgs, nixpkgs-unstable }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f (import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      }));
    in
    {
      overlays = {
        # pkgs.hyperhive.
        default = final: prev: {
          hyperhive = final.callPackage ./nix/package.nix { };
        };
        # pkgs.claude-code from nixpkgs-unstable. The import carries its own unfree allowance, so
        # taking claude-code here does not trip the host's (possibly stricter) nixpkgs config.
        claude-code = final: prev: {
          claude-code = (import nixpkgs-unstable {
            inherit (prev.stdenv.hostPlatform) system;
            config.allowUnfreePredicate = pkg: nixpkgs.lib.getName pkg == "claude-code";
          }).claude-code;
        };
      };

      # The service, with both overlays applied so its package defaults resolve.
      nixosModules.default = {
        imports = [ ./nix/modules/hyperhive.nix ];
        nixpkgs.overlays = [ self.overlays.default self.overlays.claude-code ];
      };

      packages = forAllSystems (pkgs: {
        default = pkgs.hyperhive;
        hyperhive = pkgs.hyperhive;
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (ps: with ps; [ anyio mcp pydantic rich sqlmodel typer pytest hypothesis ]))
            pkgs.ruff
            pkgs.pyright
            pkgs.bubblewrap
          ];
        };
      });

      checks = forAllSystems (pkgs:
        let
          nixos = modules: (nixpkgs.lib.nixosSystem {
            inherit (pkgs.stdenv.hostPlatform) system;
            inherit modules;
          }).config;
          host = nixos [
            self.nixosModules.default
            {
              boot.isNspawnContainer = true;
              services.hyperhive.enable = true;
              system.stateVersion = "25.11";
            }
          ];
          agent = nixos [
            ./nix/templates/agent-base.nix
            {
              networking.hostName = "h-alice";
              hyperhive.agent.package = pkgs.hyperhive;
            }
          ];
        in
        {
          package = pkgs.hyperhive;
          # The module and the template evaluate against real nixpkgs and produce their units.
          module = host.systemd.units."hyperhive.service".unit;
          agent-template = agent.systemd.units."hyperhive-agent.service".unit;
        });
    };
}
