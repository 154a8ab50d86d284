# hyperhive's Python dependencies: nixpkgs' own where its version fits, the lock's otherwise.
#
# python-pins.json (written by ./scripts/lock from requirements.lock) lists the run-time closure:
# each package's locked version, its pure-Python wheel on PyPI (URL and hash; null for compiled
# ones) and the version ranges it puts on its dependencies. A package comes from nixpkgs when
# nixpkgs has it at a version that meets hyperhive's range and the ranges of every package built
# here; every other one is built from its locked wheel (the same file, checked against the same
# hash, that `pip install -r requirements.lock` installs). The built ones replace nixpkgs' in the
# whole Python package set (packageOverrides), so a nixpkgs package that depends on one of them
# gets ours too and no closure holds two copies of a package.
{
  lib,
  python3,
  fetchurl,
  pins ? lib.importJSON ./python-pins.json,
}:

let
  inherit (lib)
    all
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    hasPrefix
    hasSuffix
    removeSuffix
    ;
  inherit (pins) packages requires;
  names = attrNames packages;

  # PEP 440 ordering where Nix's differs: 2.3 and 2.3.0 are one version.
  trimZeros = parts: if builtins.length parts > 1 && lib.last parts == "0" then trimZeros (lib.init parts) else parts;
  normal = version: concatStringsSep "." (trimZeros (lib.splitString "." version));
  # One [operator version] pair as scripts/pins.py writes them (~= arrives as >= and ==X.*).
  holds =
    version: pair:
    let
      op = builtins.elemAt pair 0;
      wanted = builtins.elemAt pair 1;
      order = builtins.compareVersions (normal version) (normal wanted);
      prefix = hasPrefix (removeSuffix "*" wanted) "${version}.";
    in
    if hasSuffix ".*" wanted then
      (if op == "!=" then !prefix else prefix)
    else
      {
        "==" = order == 0;
        "!=" = order != 0;
        ">=" = order >= 0;
        "<=" = order <= 0;
        ">" = order > 0;
        "<" = order < 0;
      }
      .${op};
  show = pairs: concatStringsSep "," (map (p: "${builtins.elemAt p 0}${builtins.elemAt p 1}") pairs);

  # nixpkgs' version of a package, or null when it has none (an alias that throws counts as none).
  nixpkgsVersion =
    name:
    let
      found = builtins.tryEval (python3.pkgs.${name}.version or null);
    in
    if found.success then found.value else null;
  rangesOn = built: name: (requires.${name} or [ ]) ++ concatMap (b: packages.${b}.dependencies.${name} or [ ]) built;
  fits =
    built: name:
    let
      version = nixpkgsVersion name;
    in
    version != null && all (holds version) (rangesOn built name);
  # A package built here brings the ranges of its locked version, which can rule out nixpkgs'
  # copy of another; grow the set until nothing changes.
  grow = built: filter (name: elem name built || !fits built name) names;
  settle =
    built:
    let
      next = grow built;
    in
    if next == built then built else settle next;
  built = settle (grow [ ]);

  fromWheel =
    ps: name:
    let
      pin = packages.${name};
      have = nixpkgsVersion name;
    in
    if pin.wheel == null then
      throw ''
        hyperhive needs ${name} ${show (rangesOn built name)} (the lock has ${pin.version}), but this
        nixpkgs has ${if have == null then "no ${name}" else "${name} ${have}"} and ${name} has no pure-Python wheel
        to build instead. Build hyperhive with the nixpkgs its flake pins (inputs.hyperhive's own
        nixpkgs), or give python3Packages a fitting ${name} with an overlay.''
    else
      ps.buildPythonPackage {
        pname = name;
        inherit (pin) version;
        format = "wheel";
        src = fetchurl { inherit (pin.wheel) url hash; };
        dependencies = map (dep: ps.${dep}) (attrNames pin.dependencies);
      };

  python = python3.override {
    self = python;
    packageOverrides = final: _: lib.genAttrs built (fromWheel final);
  };
in
{
  # The Python to build hyperhive with, what hyperhive itself depends on, and which packages were
  # built from the lock's wheels instead of taken from nixpkgs.
  inherit python built;
  dependencies = map (name: python.pkgs.${name}) (attrNames requires);
}
