# hyperhive as a Python application, built from pyproject.toml with nixpkgs' Python packages.
{ lib, python3Packages }:

python3Packages.buildPythonApplication {
  pname = "hyperhive";
  version = "0.1.0";
  pyproject = true;

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../hyperhive_core
      ../hyperhive_agent
      ../hyperhive_mind
    ];
  };

  build-system = [ python3Packages.setuptools ];

  # pyproject.toml asks for mcp >= 2.3 (mcp.server.mcpserver, the mcp_types package). If the
  # pinned nixpkgs still has mcp 1.x, override it here, e.g.
  #   (python3Packages.mcp.overridePythonAttrs (_: { version = "2.3.0"; src = fetchPypi { ... }; }))
  # rather than relaxing the bound: the code does not run on 1.x.
  dependencies = with python3Packages; [
    anyio
    mcp
    pydantic
    rich
    sqlmodel
    typer
  ];

  pythonImportsCheck = [ "hyperhive_core" "hyperhive_agent" "hyperhive_mind" ];

  meta = {
    description = "A hive of Claude Code agents, each in its own sandbox, talking through MCP servers on unix sockets";
    license = lib.licenses.mit;
    mainProgram = "hivectl";
    platforms = lib.platforms.linux;
  };
}
