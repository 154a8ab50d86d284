"""A TOML writer for the state repo's flat files: top-level keys, then one level of [tables].

Values are strings, booleans, integers, floats, lists of those, and lists of inline tables of
those; that is all the agent and hive files hold. Python reads TOML (tomllib) but cannot write
it; a tiny writer for this schema beats a dependency the Nix package and the lock file would have
to carry. tests/core/approvals/test_toml.py checks that tomllib reads back what this writes.
"""

import math
import re
from collections.abc import Mapping, Sequence

Scalar = str | bool | int | float
Value = Scalar | Sequence["Value"] | Mapping[str, "Value"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Characters TOML requires escaped in a basic string (tab may stay; newline too in a multi-line one).
_CONTROL = re.compile('[\x00-\x08\x0a-\x1f\x7f"\\\\]')
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}
_MULTILINE_CONTROL = re.compile('[\x00-\x08\x0b-\x1f\x7f"\\\\]')


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _key(key: str) -> str:
    if _BARE_KEY.fullmatch(key):
        return key
    return '"' + _CONTROL.sub(_escape, key) + '"'


def _string(text: str, *, multiline: bool) -> str:
    if multiline and "\n" in text:
        # The newline right after the opening quotes is dropped by readers: the text starts after it.
        return '"""\n' + _MULTILINE_CONTROL.sub(_escape, text) + '"""'
    return '"' + _CONTROL.sub(_escape, text) + '"'


def _value(value: Value, *, multiline: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value, multiline=multiline)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    return "[" + ", ".join(_value(item) for item in value) + "]"


def dumps(document: Mapping[str, Value], *, header: str = "") -> str:
    """The TOML text of `document`: its scalars and lists first, then each nested mapping as a [table].

    `header` becomes comment lines at the top. Multi-line strings are written as multi-line
    strings, so a long role reads as text in a diff.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    tables: list[tuple[str, Mapping[str, Value]]] = []
    for key, value in document.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value, multiline=True)}")
    for key, table in tables:
        if lines:
            lines.append("")
        lines.append(f"[{_key(key)}]")
        for inner, value in table.items():
            if isinstance(value, Mapping):
                raise ValueError(f"{key}.{inner}: tables nest one level deep in the state repo's files")
            lines.append(f"{_key(inner)} = {_value(value, multiline=True)}")
    return "\n".join(lines) + "\n"
