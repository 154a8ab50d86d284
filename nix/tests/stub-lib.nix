# A hand-written stand-in for the parts of nixpkgs' `lib` that hyperhive's module and container
# template use, so they evaluate offline (no nixpkgs here). Options are plain records; types are
# names only: the real type checks run in the flake's checks, against nixpkgs.
let
  option = attrs: attrs // { _type = "option"; };
  type = name: { inherit name; };
in
rec {
  mkOption = option;
  mkEnableOption = description: option {
    type = types.bool;
    default = false;
    description = "Whether to enable ${description}.";
  };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkDefault = value: value;
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  literalMD = text: { _type = "literalMD"; inherit text; };

  types = {
    bool = type "bool";
    str = type "str";
    path = type "path";
    package = type "package";
    enum = values: type "enum" // { inherit values; };
    nullOr = elem: type "nullOr" // { inherit elem; };
    listOf = elem: type "listOf" // { inherit elem; };
  };

  optionals = condition: list: if condition then list else [ ];
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  removePrefix = prefix: s:
    if hasPrefix prefix s
    then builtins.substring (builtins.stringLength prefix) (builtins.stringLength s) s
    else s;
  getName = pkg: pkg.pname or (builtins.parseDrvName pkg.name).name;
  # Shell quoting as nixpkgs does it: single quotes, an embedded ' as '\''.
  escapeShellArg = arg: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
  escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);

  recursiveUpdate = lhs: rhs:
    lhs // builtins.mapAttrs
      (name: value:
        if builtins.isAttrs value && builtins.isAttrs (lhs.${name} or null)
        then recursiveUpdate lhs.${name} value
        else value)
      rhs;

  # The options' defaults as a config tree; options without a default are left out.
  defaultsOf = options:
    if (options._type or null) == "option"
    then options.default
    else builtins.mapAttrs (_: defaultsOf)
      (filterAttrs (_: o: !((o._type or null) == "option") || o ? default) options);
  filterAttrs = pred: set:
    builtins.listToAttrs (builtins.filter (a: pred a.name a.value)
      (map (name: { inherit name; value = set.${name}; }) (builtins.attrNames set)));

  # A one-module module system: `config` is the options' defaults overridden by `settings`
  # (laziness ties the knot), and the module's `config` has its top-level mkIf resolved.
  evalModule = { module, settings, pkgs }:
    let
      result = module { inherit config lib pkgs; };
      lib = import ./stub-lib.nix;
      config = recursiveUpdate (defaultsOf result.options) settings;
      body = result.config;
    in
    {
      inherit config;
      out = if (body._type or null) == "if" then (if body.condition then body.content else { }) else body;
    };
}
