# `<nixpkgs/nixos>`, as nixos-container's `nix-env -f '<nixpkgs/nixos>' -A system` uses it: the
# configuration is `<nixos-config>` (nixos-container points it at the container's
# configuration.nix) and `system` is its toplevel.
{
  configuration ? import <nixos-config>,
  system ? builtins.currentSystem,
}:

let
  eval = import ./lib/eval-config.nix {
    inherit system;
    modules = [ configuration ];
  };
in
{
  inherit (eval) config options;
  pkgs = eval.config._module.args.pkgs;
  system = eval.config.system.build.toplevel;
}
