# A stand-in for nixpkgs, laid out like it: `import <nixpkgs> { system; config; overlays; }` gives
# a small package set (overlays applied as a fixed point), `<nixpkgs/lib>` is the real lib and
# `<nixpkgs/nixos>` evaluates a NixOS configuration with the real module system (./nixos).
#
# A package here is a record with the name and store path it would have; nothing builds. It holds
# the packages hyperhive's Nix files name, Python packages at versions like nixos-25.11's
# (./python-packages.nix), and claude-code, unfree as in nixpkgs: its store path is refused unless
# the set was imported with an allowance for it.
{
  system ? builtins.currentSystem or "x86_64-linux",
  localSystem ? { inherit system; },
  crossSystem ? null,
  config ? { },
  overlays ? [ ],
  # Stand-in only: which channel this checkout is (../nixpkgs-unstable says "unstable"), and
  # Python package versions to use instead of ./python-packages.nix's (null: nixpkgs lacks it).
  channel ? "stable",
  pythonVersions ? { },
  ...
}:

let
  lib = import ./lib;
  hostPlatform = lib.systems.elaborate (localSystem.system or system);
  allowUnfree =
    pkg: config.allowUnfree or false || (config.allowUnfreePredicate or (_: false)) pkg;

  # What stdenv.mkDerivation returns, minus the build: the store path hashes the name and the
  # `contents` a stand-in records (so two configurations give two system paths).
  mkDerivation =
    attrs:
    let
      name = attrs.name or "${attrs.pname}-${attrs.version}";
      hash = builtins.substring 0 32 (builtins.hashString "sha256" "${name}\n${attrs.contents or ""}");
      drv = attrs // {
        type = "derivation";
        inherit name;
        nixpkgsChannel = channel;
        outPath = "/nix/store/${hash}-${name}";
        drvPath = "/nix/store/${hash}-${name}.drv";
        outputs = [ "out" ];
        meta = attrs.meta or { };
      };
      refused = throw "Package ‘${name}’ has an unfree license (‘unfree’), refusing to evaluate.";
    in
    if (drv.meta.unfree or false) && !allowUnfree drv then
      drv // { outPath = refused; drvPath = refused; }
    else
      drv;

  tool = pname: version: mkDerivation { inherit pname version; };

  mkPython =
    packageOverrides:
    let
      python = mkDerivation {
        pname = "python3";
        version = "3.13.9";
        pythonVersion = "3.13";
        pkgs = lib.fix (
          lib.extends packageOverrides (
            _:
            import ./python-packages.nix {
              inherit lib mkDerivation python pythonVersions;
            }
          )
        );
        override = args: mkPython (args.packageOverrides or packageOverrides);
        withPackages =
          f:
          mkDerivation {
            name = "python3-3.13.9-env";
            packages = f python.pkgs;
          };
      };
    in
    python;

  base = final: {
    _type = "pkgs";
    inherit lib config overlays channel;
    path = ./.;
    __splicedPackages = final;
    appendOverlays =
      extra:
      import ./. {
        inherit system localSystem config channel pythonVersions;
        overlays = overlays ++ extra;
      };
    callPackage = lib.callPackageWith final;

    stdenv = {
      inherit hostPlatform mkDerivation;
      buildPlatform = hostPlatform;
      targetPlatform = hostPlatform;
    };
    writeText =
      name: text:
      mkDerivation {
        inherit name text;
        contents = text;
      };
    fetchurl =
      { url, hash }:
      assert lib.assertMsg (builtins.match "sha256-[A-Za-z0-9+/]{43}=" hash != null)
        "fetchurl ${url}: hash must be an SRI sha256 (sha256-<44 base64 characters>), not ${hash}";
      mkDerivation {
        name = baseNameOf url;
        inherit url hash;
        contents = hash;
      };
    mkShell =
      {
        packages ? [ ],
        inputsFrom ? [ ],
        ...
      }@attrs:
      mkDerivation (
        attrs
        // {
          name = attrs.name or "nix-shell";
          inherit packages inputsFrom;
        }
      );

    bash = tool "bash" "5.3p3";
    bubblewrap = tool "bubblewrap" "0.11.0";
    coreutils = tool "coreutils" "9.8";
    findutils = tool "findutils" "4.10.0";
    git = tool "git" "2.51.2";
    gnugrep = tool "gnugrep" "3.12";
    gnused = tool "gnused" "4.9";
    jq = tool "jq" "1.8.1";
    pyright = tool "pyright" "1.1.407";
    ripgrep = tool "ripgrep" "15.1.0";
    ruff = tool "ruff" "0.14.3";
    systemd = tool "systemd" "258.2";
    claude-code = mkDerivation {
      pname = "claude-code";
      version = if channel == "unstable" then "2.1.31" else "2.0.14";
      meta.unfree = true;
    };

    # python3.override { packageOverrides = final: prev: { ... }; } as in nixpkgs: the overrides
    # apply to the whole package set, so every package that names one gets the override.
    python3 = mkPython (_: _: { });
    python3Packages = final.python3.pkgs;
  };
in
lib.fix (lib.foldl' (f: overlay: lib.extends overlay f) base overlays)
