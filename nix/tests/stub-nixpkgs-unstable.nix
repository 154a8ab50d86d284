# The stand-in nixpkgs-unstable input: the stable stand-in, with its claude-code marked as unstable's.
args:
let pkgs = import ./stub-nixpkgs.nix args;
in pkgs // { claude-code = pkgs.claude-code // { channel = "unstable"; }; }
