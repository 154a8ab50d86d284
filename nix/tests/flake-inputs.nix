# flake.nix's inputs, as stand-ins: what `inputs.nixpkgs` is to a flake (its outPath, its lib with
# nixosSystem, its legacyPackages), for the stand-in nixpkgs and nixpkgs-unstable in this dir.
let
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  input =
    outPath:
    let
      lib = (import ./nixpkgs/lib).extend (
        final: _: {
          # As nixpkgs' flake.nix defines it.
          nixosSystem =
            args:
            import ./nixpkgs/nixos/lib/eval-config.nix (
              {
                lib = final;
                system = null;
              }
              // args
            );
        }
      );
    in
    {
      inherit outPath lib;
      legacyPackages = lib.genAttrs systems (system: import outPath { inherit system; });
    };
in
{
  nixpkgs = input ./nixpkgs;
  nixpkgs-unstable = input ./nixpkgs-unstable;
}
