"""hyperhive_agent runs in sandboxes with a bare python3: it may import the standard library only."""

import json
import subprocess
import sys

from tests.agent._process import REPO_ROOT

PROBE = """
import json, pkgutil, sys
import hyperhive_agent
for module in pkgutil.walk_packages(hyperhive_agent.__path__, "hyperhive_agent."):
    __import__(module.name)
top = {name.partition(".")[0] for name in sys.modules}
print(json.dumps(sorted(top - set(sys.stdlib_module_names) - {"hyperhive_agent", "__main__"})))
"""


def test_every_agent_module_imports_only_the_standard_library() -> None:
    # -S: no site-packages, so a third-party import fails instead of sneaking in
    done = subprocess.run(
        [sys.executable, "-S", "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(done.stdout) == []


def test_the_bridge_command_does_not_load_the_turn_loop() -> None:
    probe = "import json, sys; names = sorted(sys.modules); import hyperhive_agent.__main__, hyperhive_agent.bridge; "
    probe += "print(json.dumps(sorted(set(sys.modules) - set(names))))"
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "hyperhive_agent.bridge" in loaded
    assert not {"hyperhive_agent.turn", "hyperhive_agent.client", "hyperhive_agent.drivers", "ctypes"} & loaded
