"""Pure rewrites of a nixos-container conf file (`/etc/nixos-containers/<C>.conf`), text in, text out.

The file is a systemd EnvironmentFile of `KEY=value` lines; the container's start script expands
EXTRA_NSPAWN_FLAGS unquoted into systemd-nspawn's command line, so its value is a list of words
split on whitespace. A rewrite replaces only our binds (by their destination) and our keys, keeps
every other line and flag, and is idempotent: rewriting its own output changes nothing.
"""

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

EXTRA_FLAGS_KEY = "EXTRA_NSPAWN_FLAGS"
BIND_OPTIONS = ("--bind", "--bind-ro")
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")
# Characters the start script's unquoted expansion would split or a shell would reinterpret.
_UNSAFE = re.compile(r"[\s\"'\\$`]")


@dataclass(frozen=True, slots=True)
class Bind:
    """A host dir bound into the container: `--bind=<source>:<target>`."""

    source: Path
    target: str

    @property
    def flag(self) -> str:
        """The nspawn flag, as one word."""
        return f"--bind={self.source}:{self.target}"


def _value_of(line: str, key: str) -> str | None:
    match = _ASSIGNMENT.match(line)
    if match is None or match["key"] != key:
        return None
    return match["value"]


def _unquote(value: str) -> str:
    """The value systemd hands the start script: quotes removed, escapes resolved."""
    try:
        return " ".join(shlex.split(value, posix=True))
    except ValueError as exc:
        raise ValueError(f"cannot parse {value!r}: {exc}") from exc


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_value(text: str, key: str) -> str | None:
    """The effective (last) value of `key` in a conf file's text, unquoted; None when absent.

    Raises:
        ValueError: the value's quoting is unbalanced.
    """
    values = [v for line in text.splitlines() if (v := _value_of(line, key)) is not None]
    return _unquote(values[-1]) if values else None


def nspawn_flags(text: str) -> list[str]:
    """The words EXTRA_NSPAWN_FLAGS puts on systemd-nspawn's command line.

    Raises:
        ValueError: the value's quoting is unbalanced.
    """
    return (read_value(text, EXTRA_FLAGS_KEY) or "").split()


def _bind_target(spec: str) -> str:
    # nspawn: SOURCE[:TARGET[:OPTIONS]]; without a target the source path is used inside too.
    parts = spec.split(":")
    return parts[1] if len(parts) > 1 and parts[1] else parts[0]


def _without_binds_to(words: Sequence[str], targets: set[str]) -> list[str]:
    kept: list[str] = []
    skip_next = False
    for i, word in enumerate(words):
        if skip_next:
            skip_next = False
            continue
        option, eq, spec = word.partition("=")
        if option in BIND_OPTIONS and eq and _bind_target(spec) in targets:
            continue
        # The two-word form `--bind SRC:DST` is ours too when DST is one of our targets.
        if word in BIND_OPTIONS and i + 1 < len(words) and _bind_target(words[i + 1]) in targets:
            skip_next = True
            continue
        kept.append(word)
    return kept


def _set_line(text: str, key: str, line: str) -> str:
    """Replace every assignment of `key` by `line` at the first one's place, or append it."""
    out: list[str] = []
    placed = False
    for existing in text.splitlines():
        if _value_of(existing, key) is None:
            out.append(existing)
        elif not placed:
            out.append(line)
            placed = True
    if not placed:
        out.append(line)
    return "\n".join(out) + "\n"


def set_binds(text: str, binds: Sequence[Bind]) -> str:
    """Make EXTRA_NSPAWN_FLAGS carry exactly our `binds`, keeping every flag that binds elsewhere.

    Any bind (either form, `--bind` or `--bind-ro`) onto one of our targets is replaced, so a moved
    socket dir never leaves a stale bind behind. Our flags come last, in the order given.

    Raises:
        ValueError: a bind path would be split by the start script's unquoted expansion, or the
            existing value's quoting is unbalanced.
    """
    for bind in binds:
        if _UNSAFE.search(bind.flag):
            raise ValueError(f"bind {bind.flag!r} has whitespace, quotes or shell characters; nspawn would split it")
    foreign = _without_binds_to(nspawn_flags(text), {b.target for b in binds})
    words = [*foreign, *(b.flag for b in binds)]
    return _set_line(text, EXTRA_FLAGS_KEY, f"{EXTRA_FLAGS_KEY}={_quote(' '.join(words))}")


def set_value(text: str, key: str, value: str) -> str:
    """Make `key` hold `value` (a plain word, written unquoted), keeping every other line.

    Raises:
        ValueError: `value` needs quoting.
    """
    if _UNSAFE.search(value):
        raise ValueError(f"{key} value {value!r} needs quoting")
    return _set_line(text, key, f"{key}={value}")
