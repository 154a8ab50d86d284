# NixOS's eval-config.nix, which `lib.nixosSystem` calls: the real `lib.evalModules` over the
# stand-in NixOS modules (../modules/module-list.nix) and the caller's modules.
{
  system ? builtins.currentSystem,
  modules,
  specialArgs ? { },
  lib ? import ../../lib,
  baseModules ? import ../modules/module-list.nix,
  ...
}:

lib.evalModules {
  specialArgs = {
    modulesPath = toString ../modules;
  }
  // specialArgs;
  modules =
    baseModules
    # As in NixOS: `system` (lib.nixosSystem's, or the evaluating machine's) is the legacy
    # nixpkgs.system, a default any nixpkgs.hostPlatform or nixpkgs.pkgs overrides.
    ++ lib.optional (system != null) { nixpkgs.system = lib.mkDefault system; }
    ++ modules;
}
