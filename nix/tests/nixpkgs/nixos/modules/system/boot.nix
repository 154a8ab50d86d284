# boot.isContainer and boot.isNspawnContainer, and what NixOS derives from them for containers.
{ config, lib, ... }:

{
  options.boot = {
    isContainer = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Whether this NixOS machine is a lightweight container.";
    };
    isNspawnContainer = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Whether this NixOS machine is a systemd-nspawn container.";
    };
  };

  config = lib.mkMerge [
    (lib.mkIf config.boot.isNspawnContainer { boot.isContainer = true; })
    (lib.mkIf config.boot.isContainer { networking.useHostResolvConf = lib.mkDefault true; })
  ];
}
