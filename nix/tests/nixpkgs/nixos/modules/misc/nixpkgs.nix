# NixOS's nixpkgs module, cut to what these configurations use: `pkgs` is built from
# nixpkgs.{system, config, overlays} (this stand-in nixpkgs), or is nixpkgs.pkgs with the overlays
# appended. The config type and the nixpkgs.pkgs assertion are NixOS's own (MIT, nixpkgs).
{
  config,
  options,
  lib,
  ...
}:

let
  cfg = config.nixpkgs;
  opt = options.nixpkgs;

  isConfig = x: builtins.isAttrs x || lib.isFunction x;
  optCall = f: x: if lib.isFunction f then f x else f;
  mergeConfig =
    lhs_: rhs_:
    let
      lhs = optCall lhs_ { inherit lib; };
      rhs = optCall rhs_ { inherit lib; };
    in
    lib.zipAttrsWith (
      _: values:
      let
        rhs' = lib.elemAt values 0;
      in
      if builtins.isList rhs' then lib.concatLists values else rhs'
    ) [ lhs rhs ];
  configType = lib.mkOptionType {
    name = "nixpkgs-config";
    description = "nixpkgs config";
    check = isConfig;
    merge = _: lib.foldr (def: mergeConfig def.value) { };
  };
  overlayType = lib.mkOptionType {
    name = "nixpkgs-overlay";
    description = "nixpkgs overlay";
    check = lib.isFunction;
    merge = lib.mergeOneOption;
  };

  system = if opt.hostPlatform.isDefined then cfg.hostPlatform.system else cfg.system;
  finalPkgs =
    if opt.pkgs.isDefined then
      cfg.pkgs.appendOverlays cfg.overlays
    else
      import ../../.. {
        inherit system;
        inherit (cfg) config overlays;
      };
in
{
  options.nixpkgs = {
    pkgs = lib.mkOption {
      type = lib.types.pkgs;
      description = "If set, the pkgs argument of every module, extended with nixpkgs.overlays.";
    };
    config = lib.mkOption {
      default = { };
      type = configType;
      description = "Global configuration for Nixpkgs; ignored when nixpkgs.pkgs is set.";
    };
    overlays = lib.mkOption {
      default = [ ];
      type = lib.types.listOf overlayType;
      description = "Overlays applied to Nixpkgs.";
    };
    hostPlatform = lib.mkOption {
      type = lib.types.either lib.types.str lib.types.attrs;
      apply = lib.systems.elaborate;
      description = "The platform the configuration runs on.";
    };
    system = lib.mkOption {
      type = lib.types.str;
      default = throw "Neither nixpkgs.hostPlatform nor the legacy option nixpkgs.system has been set.";
      description = "The legacy way to name the platform.";
    };
  };

  config = {
    _module.args.pkgs = lib.mkOverride lib.modules.defaultOverridePriority finalPkgs;
    assertions = [
      {
        assertion = opt.pkgs.isDefined -> cfg.config == { };
        message = ''
          Your system configures nixpkgs with an externally created instance.
          `nixpkgs.config` options should be passed when creating the instance instead.
        '';
      }
    ];
  };
}
