# The stand-in nixpkgs-unstable: the stand-in nixpkgs, saying it is unstable (its claude-code is newer).
args: import ../nixpkgs (args // { channel = "unstable"; })
