"""Hashes of desired configuration, so unchanged desired state is recognised without rebuilding.

A hash covers a JSON document in canonical form (sorted keys, no whitespace): equal content hashes
equal, however it was built. The nixos backend keeps one per container in its conf file and skips
`nixos-container update` while it matches; a reconciler can keep one per desired-state file the
same way. Change DESIRED_VERSION when the meaning of a document changes without its content.
"""

import hashlib
import json
from collections.abc import Mapping

DESIRED_VERSION = 1


def desired_hash(document: Mapping[str, object]) -> str:
    """`sha256:<hex>` of a JSON-able document (str, int, float, bool, None, lists and str-keyed dicts).

    Raises:
        TypeError: the document holds something JSON cannot say.
        ValueError: a float in it is NaN or infinite.
    """
    canonical = json.dumps(
        {"version": DESIRED_VERSION, "document": document},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
