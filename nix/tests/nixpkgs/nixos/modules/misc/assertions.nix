# NixOS's assertions and warnings, as declared there; system.build.toplevel checks them.
{ lib, ... }:

{
  options = {
    assertions = lib.mkOption {
      type = lib.types.listOf lib.types.unspecified;
      internal = true;
      default = [ ];
      description = "Conditions that must hold for the system to build, each with its message.";
    };
    warnings = lib.mkOption {
      internal = true;
      default = [ ];
      type = lib.types.listOf lib.types.str;
      description = "Messages printed when the system is built.";
    };
  };
}
