# The NixOS modules every stand-in configuration gets: only the options hyperhive's module and
# container template set or read, declared with the real lib's mkOption and types.
[
  ./misc/assertions.nix
  ./misc/nixpkgs.nix
  ./config/environment.nix
  ./config/networking.nix
  ./system/boot.nix
  ./system/systemd.nix
  ./system/toplevel.nix
]
