# A stand-in for `pkgs`: the two packages hyperhive's module names, and writeText, as records
# with the store paths they would have. Nothing here builds.
let
  package = pname: version: {
    type = "derivation";
    inherit pname version;
    name = "${pname}-${version}";
    outPath = "/nix/store/00000000000000000000000000000000-${pname}-${version}";
  };
in
{
  hyperhive = package "hyperhive" "0.1.0";
  claude-code = package "claude-code" "2.0.0";
  writeText = name: text: {
    type = "derivation";
    inherit name text;
    outPath = "/nix/store/11111111111111111111111111111111-${name}";
  };
}
