# environment.systemPackages, environment.variables and environment.etc, typed as in NixOS.
{ lib, ... }:

let
  inherit (lib) mkOption types;
in
{
  options.environment = {
    systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      description = "Packages in the system profile (/run/current-system/sw).";
    };
    variables = mkOption {
      type = types.attrsOf (types.either types.str (types.listOf types.str));
      default = { };
      apply = lib.mapAttrs (_: v: if builtins.isList v then lib.concatStringsSep ":" v else v);
      description = "Variables of every login shell.";
    };
    etc = mkOption {
      default = { };
      description = "Files in /etc.";
      type = types.attrsOf (
        types.submodule (
          { name, ... }:
          {
            options = {
              enable = mkOption {
                type = types.bool;
                default = true;
                description = "Whether the file is created.";
              };
              target = mkOption {
                type = types.str;
                default = name;
                description = "Its path under /etc.";
              };
              text = mkOption {
                type = types.nullOr types.lines;
                default = null;
                description = "Its content.";
              };
              mode = mkOption {
                type = types.str;
                default = "symlink";
                description = "Its mode, or symlink.";
              };
            };
          }
        )
      );
    };
  };
}
