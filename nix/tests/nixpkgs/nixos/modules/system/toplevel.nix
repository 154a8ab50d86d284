# system.stateVersion and system.build.toplevel. The toplevel's store path covers the unit files,
# /etc and the system packages, so evaluating it type-checks all of them; like NixOS's it refuses
# to exist while an assertion fails, with NixOS's message.
{ config, lib, pkgs, ... }:

let
  failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  contents = builtins.toJSON {
    units = lib.mapAttrs (_: unit: unit.text) config.systemd.units;
    etc = lib.mapAttrs (_: file: file.text) (lib.filterAttrs (_: file: file.enable) config.environment.etc);
    packages = map toString config.environment.systemPackages;
  };
  toplevel = pkgs.stdenv.mkDerivation {
    name = "nixos-system-${config.networking.hostName}-${config.system.stateVersion}";
    inherit contents;
  };
in
{
  options.system = {
    stateVersion = lib.mkOption {
      type = lib.types.str;
      default = lib.trivial.release;
      description = "The NixOS release whose defaults stateful data was created with.";
    };
    build = lib.mkOption {
      type = lib.types.lazyAttrsOf lib.types.unspecified;
      default = { };
      description = "What the configuration builds.";
    };
  };

  config.system.build.toplevel =
    if failed != [ ] then
      throw "\nFailed assertions:\n${lib.concatStringsSep "\n" (map (m: "- ${m}") failed)}"
    else
      lib.foldr (w: lib.warn w) toplevel config.warnings;
}
