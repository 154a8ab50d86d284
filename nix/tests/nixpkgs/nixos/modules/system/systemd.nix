# systemd.services and the unit files NixOS generates from them (systemd.units), after
# nixos/lib/systemd-lib.nix and systemd-unit-options.nix (MIT, nixpkgs): the same option types
# (a unit option is a systemd value; Restart and Type are checked), the same default PATH, and
# the same unit text: [Unit] from the unit options, [Service] with one Environment= line per
# variable (JSON-quoted) followed by serviceConfig, [Install] from wantedBy.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    concatStrings
    concatStringsSep
    mapAttrsToList
    mkOption
    optionalAttrs
    optionalString
    types
    ;

  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: builtins.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  assertValueOneOf =
    name: values: attrs:
    lib.optional (
      attrs ? ${name} && !lib.elem attrs.${name} values
    ) "Systemd Service field `${name}' cannot have value `${toString attrs.${name}}'.";
  checkService =
    attrs:
    let
      errors =
        assertValueOneOf "Type" [
          "exec"
          "simple"
          "forking"
          "oneshot"
          "dbus"
          "notify"
          "notify-reload"
          "idle"
        ] attrs
        ++ assertValueOneOf "Restart" [
          "no"
          "on-success"
          "on-failure"
          "on-abnormal"
          "on-abort"
          "always"
        ] attrs;
    in
    if errors == [ ] then true else builtins.trace (concatStringsSep "\n" errors) false;

  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;
  attrsToSection =
    as:
    concatStrings (
      lib.concatLists (
        mapAttrsToList (
          name: value: map (x: "${name}=${toOption x}\n") (if builtins.isList value then value else [ value ])
        ) as
      )
    );

  serviceOptions =
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Whether the unit is created.";
        };
        description = mkOption {
          type = types.singleLineStr;
          default = "";
          description = "Description=";
        };
        wantedBy = mkOption {
          type = types.listOf unitNameType;
          default = [ ];
          description = "Units that want this one ([Install] WantedBy=).";
        };
        after = mkOption {
          type = types.listOf unitNameType;
          default = [ ];
          description = "After=";
        };
        wants = mkOption {
          type = types.listOf unitNameType;
          default = [ ];
          description = "Wants=";
        };
        requires = mkOption {
          type = types.listOf unitNameType;
          default = [ ];
          description = "Requires=";
        };
        path = mkOption {
          type = types.listOf (types.oneOf [ types.package types.str ]);
          default = [ ];
          description = "Packages whose bin and sbin go on the unit's PATH.";
        };
        environment = mkOption {
          type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
          default = { };
          description = "Environment= of the unit.";
        };
        serviceConfig = mkOption {
          type = types.addCheck (types.attrsOf unitOption) checkService;
          default = { };
          description = "The [Service] section.";
        };
        unitConfig = mkOption {
          type = types.attrsOf unitOption;
          default = { };
          description = "The [Unit] section.";
        };
      };
      config = {
        # stage2ServiceConfig: every service gets the basic tools on its PATH, after its own.
        path = lib.mkAfter [
          pkgs.coreutils
          pkgs.findutils
          pkgs.gnugrep
          pkgs.gnused
          pkgs.systemd
        ];
        environment.PATH = lib.mkIf (
          config.path != [ ]
        ) "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}";
        unitConfig =
          optionalAttrs (config.requires != [ ]) { Requires = toString config.requires; }
          // optionalAttrs (config.wants != [ ]) { Wants = toString config.wants; }
          // optionalAttrs (config.after != [ ]) { After = toString config.after; }
          // optionalAttrs (config.description != "") { Description = config.description; };
      };
    };

  serviceToUnit = name: def: {
    inherit (def) wantedBy enable;
    text =
      ''
        [Unit]
        ${attrsToSection def.unitConfig}
      ''
      + ''
        [Service]
      ''
      + concatStrings (
        mapAttrsToList (
          n: v: optionalString (v != null) "Environment=${builtins.toJSON "${n}=${v}"}\n"
        ) def.environment
      )
      + attrsToSection def.serviceConfig
      + optionalString (def.wantedBy != [ ]) ''

        [Install]
        WantedBy=${concatStringsSep " " def.wantedBy}
      '';
  };
in
{
  options.systemd = {
    services = mkOption {
      type = types.attrsOf (types.submodule serviceOptions);
      default = { };
      description = "Definition of systemd service units.";
    };
    units = mkOption {
      description = "The unit files, by name.";
      default = { };
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              text = mkOption {
                type = types.nullOr types.str;
                default = null;
                description = "The unit file.";
              };
              enable = mkOption {
                type = types.bool;
                default = true;
                description = "Whether the unit is installed.";
              };
              wantedBy = mkOption {
                type = types.listOf unitNameType;
                default = [ ];
                description = "Units that want this one.";
              };
              unit = mkOption {
                internal = true;
                description = "The unit file as a store path.";
              };
            };
            config.unit = pkgs.writeText "unit-${name}" (toString config.text);
          }
        )
      );
    };
  };

  config.systemd.units = lib.mapAttrs' (
    name: def: lib.nameValuePair "${name}.service" (serviceToUnit name def)
  ) (lib.filterAttrs (_: def: def.enable) config.systemd.services);
}
