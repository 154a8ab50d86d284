# The networking options the container template sets, typed as in NixOS.
{ lib, ... }:

let
  inherit (lib) mkOption types;
in
{
  options.networking = {
    hostName = mkOption {
      default = "nixos";
      type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      description = "The name of the machine.";
    };
    useDHCP = mkOption {
      type = types.bool;
      default = true;
      description = "Whether to use DHCP on every interface.";
    };
    useHostResolvConf = mkOption {
      type = types.bool;
      default = false;
      description = "In containers, whether to use the host's resolv.conf.";
    };
  };
}
