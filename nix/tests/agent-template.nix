# What the NixOS module's template is to a real host, for tests: agent-base.nix with the two
# packages set. The module hands them over by store path; here they are evaluated in the
# container's own (stand-in) nixpkgs, hyperhive from nix/package.nix.
{ pkgs, ... }:

{
  imports = [ ../templates/agent-base.nix ];
  hyperhive.agent.package = pkgs.callPackage ../package.nix { };
  hyperhive.agent.claudePackage = pkgs.claude-code;
}
