"""How claude is logged in here, judged from its files and environment without running it.

claude accepts an OAuth login (`.credentials.json` in its config dir), an API key or token in
the environment or in `settings.json`'s `env`, an `apiKeyHelper` command in `settings.json`, an
API key kept in `.claude.json`, a gateway (`ANTHROPIC_BASE_URL`), and Bedrock, Vertex or Foundry
(`CLAUDE_CODE_USE_*`). `find_login` names the first it finds, never its value; `login_secrets`
collects the values, only so they can be scrubbed from logs and events; `login_signature`
changes whenever one of those files does, so an agent knows when to try claude again.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

CREDENTIALS_FILE = ".credentials.json"
SETTINGS_FILE = "settings.json"
CONFIG_FILE = ".claude.json"
MANAGED_SETTINGS = Path("/etc/claude-code/managed-settings.json")
# Variables that log claude in by themselves; their values are secrets.
KEY_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
PROVIDER_ENV = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")
GATEWAY_ENV = "ANTHROPIC_BASE_URL"
# Secret values worth scrubbing wherever they are set.
SECRET_ENV = (*KEY_ENV, "AWS_BEARER_TOKEN_BEDROCK", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Shorter values would redact ordinary words; real keys and tokens are far longer.
MIN_SECRET_CHARS = 8
FALSY = ("", "0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Login:
    """A way claude is logged in, described without its secret: `ANTHROPIC_API_KEY in /run/claude/settings.json`."""

    how: str


def find_login(claude_dir: Path, env: Mapping[str, str]) -> Login | None:
    """The first login claude would use here, or None when it has none."""
    if (claude_dir / CREDENTIALS_FILE).is_file():
        return Login(f"the credentials in {claude_dir}")
    sources = [("the environment", dict(env))]
    for path in _settings_files(claude_dir):
        settings = _read_json(path)
        if isinstance(settings.get("apiKeyHelper"), str) and settings["apiKeyHelper"]:
            return Login(f"apiKeyHelper in {path}")
        sources.append((str(path), _env_of(settings)))
    for name in KEY_ENV:
        for where, values in sources:
            if values.get(name):
                return Login(f"{name} {'from' if where == 'the environment' else 'in'} {where}")
    for name in PROVIDER_ENV:
        for where, values in sources:
            if values.get(name, "").strip().lower() not in FALSY:
                return Login(f"{name} {'from' if where == 'the environment' else 'in'} {where}")
    for where, values in sources:
        if values.get(GATEWAY_ENV):
            return Login(f"a gateway ({GATEWAY_ENV} {'from' if where == 'the environment' else 'in'} {where})")
    if _read_json(claude_dir / CONFIG_FILE).get("primaryApiKey"):
        return Login(f"an API key in {claude_dir / CONFIG_FILE}")
    return None


def login_secrets(claude_dir: Path, env: Mapping[str, str]) -> tuple[str, ...]:
    """Every secret value of claude's login found here (keys, tokens), for redaction only."""
    values = [env.get(name, "") for name in SECRET_ENV]
    for path in _settings_files(claude_dir):
        settings_env = _env_of(_read_json(path))
        values += [settings_env.get(name, "") for name in SECRET_ENV]
    values.append(str(_read_json(claude_dir / CONFIG_FILE).get("primaryApiKey") or ""))
    oauth = _read_json(claude_dir / CREDENTIALS_FILE).get("claudeAiOauth")
    if isinstance(oauth, dict):
        tokens = cast(dict[str, Any], oauth)
        values += [str(tokens.get("accessToken") or ""), str(tokens.get("refreshToken") or "")]
    return tuple(dict.fromkeys(v for v in values if len(v) >= MIN_SECRET_CHARS))


def login_signature(claude_dir: Path) -> tuple[tuple[int, int] | None, ...]:
    """Changes when any file claude reads its login from changes (or appears, or goes)."""
    paths = (claude_dir / CREDENTIALS_FILE, claude_dir / CONFIG_FILE, *_settings_files(claude_dir, existing=False))
    return tuple(_stamp(path) for path in paths)


def _settings_files(claude_dir: Path, *, existing: bool = True) -> list[Path]:
    paths = [claude_dir / SETTINGS_FILE, MANAGED_SETTINGS]
    return [p for p in paths if p.is_file()] if existing else paths


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: object = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cast(dict[str, Any], data) if isinstance(data, dict) else {}


def _env_of(settings: dict[str, Any]) -> dict[str, str]:
    env = settings.get("env")
    if not isinstance(env, dict):
        return {}
    return {str(k): str(v) for k, v in cast(dict[object, object], env).items()}
