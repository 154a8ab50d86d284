"""Durations as people read them, shared by hivectl's tables and the dashboard's pages."""


def age(seconds: float | None) -> str:
    """A short human duration: 42s, 5m03s, 2h10m, 3d04h ("-" when unknown; never negative)."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
