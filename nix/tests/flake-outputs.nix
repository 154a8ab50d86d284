# flake.nix's outputs, called with the stand-in inputs (no network, no real nixpkgs).
let
  inputs = import ./flake-inputs.nix;
  flake = import ../../flake.nix;
  self = flake.outputs (inputs // { inherit self; });
in
self // { inherit inputs; inherit (flake) description; declaredInputs = flake.inputs; }
