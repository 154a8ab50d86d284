{
  description = "hyperhive: a hive of Claude Code agents in NixOS containers, talking through MCP";

  # This file only wires inputs to outputs; the package, module and template live in nix/.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    # claude-code moves fast; the stable channel lags too far behind it.
    nixpkgs-unstable.url = "github:NixOS/nixpkgs/nixos-unstable";
  };

  outputs =
    {
      self,
      nixpkgs,
      nixpkgs-unstable,
    }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # claude-code from nixpkgs-unstable; the import carries its own unfree allowance, for
      # claude-code alone, so taking it does not depend on the host's nixpkgs config.
      claudeCodeFor =
        system:
        (import nixpkgs-unstable {
          inherit system;
          config.allowUnfreePredicate = pkg: lib.getName pkg == "claude-code";
        }).claude-code;
      packagesFor =
        system:
        self.packages.${system}
          or (throw "hyperhive's flake has no packages for ${system}; it builds for ${toString systems}");
    in
    {
      packages = forAllSystems (pkgs: {
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.hyperhive;
        hyperhive = pkgs.callPackage ./nix/package.nix { };
        claude-code = claudeCodeFor pkgs.stdenv.hostPlatform.system;
      });

      # For hosts that want pkgs.hyperhive / pkgs.claude-code in their own package set. The
      # module does not need them and applies neither.
      overlays = {
        default = final: _: { hyperhive = final.callPackage ./nix/package.nix { }; };
        claude-code = _: prev: { claude-code = claudeCodeFor prev.stdenv.hostPlatform.system; };
      };

      # The service, with this flake's packages and nixpkgs as its defaults. It touches nothing
      # under nixpkgs.*, so it also works on hosts that set nixpkgs.pkgs.
      nixosModules.default =
        { pkgs, ... }:
        let
          own = packagesFor pkgs.stdenv.hostPlatform.system;
        in
        {
          imports = [ ./nix/modules/hyperhive.nix ];
          services.hyperhive = {
            package = lib.mkDefault own.hyperhive;
            claudePackage = lib.mkDefault own.claude-code;
            # The containers are built from the nixpkgs this flake pins (or the host's, with
            # inputs.hyperhive.inputs.nixpkgs.follows = "nixpkgs").
            nixpkgs = lib.mkDefault nixpkgs.outPath;
          };
        };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          # The package's Python with its dependencies, as the package resolves them; the
          # locked dev tools come from ./scripts/test's venv (requirements.lock).
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.hyperhive ];
          packages = [
            pkgs.ruff
            pkgs.pyright
            pkgs.bubblewrap
          ];
        };
      });

      checks = forAllSystems (
        pkgs:
        let
          system = pkgs.stdenv.hostPlatform.system;
          nixos =
            modules:
            (lib.nixosSystem {
              inherit system modules;
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
              hyperhive.agent.package = self.packages.${system}.hyperhive;
              hyperhive.agent.claudePackage = self.packages.${system}.claude-code;
            }
          ];
        in
        {
          package = self.packages.${system}.hyperhive;
          # The module and the template evaluate against real nixpkgs and produce their units.
          module = host.systemd.units."hyperhive.service".unit;
          agent-template = agent.systemd.units."hyperhive-agent.service".unit;
        }
      );
    };
}
