# The stand-in nixpkgs' python3Packages: hyperhive's run-time closure at versions like those of
# nixos-25.11 (mcp still 1.x; no mcp-types, httpx2 or httpcore2), plus the two builders.
# `pythonVersions` (an argument of the stand-in nixpkgs) changes or removes (null) some of them,
# so tests can see nix/python-deps.nix choose differently.
{
  lib,
  mkDerivation,
  python,
  pythonVersions,
}:

let
  package =
    pname: version:
    mkDerivation {
      inherit pname version;
      name = "python3.13-${pname}-${version}";
    };

  # What buildPythonPackage keeps of its arguments: enough to see what would be built from what.
  build =
    prefix: attrs:
    mkDerivation (
      attrs
      // {
        name = "${prefix}${attrs.pname}-${attrs.version}";
        dependencies = attrs.dependencies or [ ];
        contents = builtins.toJSON {
          src = attrs.src.outPath or "";
          dependencies = map (d: d.outPath) (attrs.dependencies or [ ]);
        };
      }
      // attrs.passthru or { }
    );

  versions = {
    annotated-types = "0.7.0";
    anyio = "4.11.0";
    attrs = "25.4.0";
    cffi = "2.0.0";
    click = "8.2.1";
    cryptography = "46.0.3";
    h11 = "0.16.0";
    hypothesis = "6.140.3";
    idna = "3.11";
    jsonschema = "4.25.1";
    jsonschema-specifications = "2025.9.1";
    markdown-it-py = "4.0.0";
    mcp = "1.21.0";
    mdurl = "0.1.2";
    opentelemetry-api = "1.38.0";
    psycopg = "3.2.10";
    psycopg-pool = "3.2.6";
    pycparser = "2.23";
    pydantic = "2.12.4";
    pydantic-core = "2.41.5";
    pygments = "2.19.2";
    pyjwt = "2.10.1";
    pytest = "8.4.2";
    python-multipart = "0.0.20";
    referencing = "0.36.2";
    rich = "14.2.0";
    rpds-py = "0.28.0";
    setuptools = "80.9.0";
    shellingham = "1.5.4";
    sqlalchemy = "2.0.44";
    sqlmodel = "0.0.27";
    sse-starlette = "3.0.2";
    starlette = "0.49.1";
    truststore = "0.10.4";
    typer = "0.19.2";
    typing-extensions = "4.15.0";
    typing-inspection = "0.4.2";
    uvicorn = "0.38.0";
  };
in
lib.mapAttrs package (lib.filterAttrs (_: v: v != null) (versions // pythonVersions))
// {
  inherit python;
  buildPythonPackage = build "python3.13-";
  buildPythonApplication = build "";
}
