"""HTML built from literal templates where every value is escaped unless it is already `Html`.

Agents are untrusted: their names, bodies, roles, reasons and events reach the page only through
`esc` (the CLI's `html_escape_literal`: markup escaped, control characters as visible escapes),
so forgetting to escape is not possible by construction; only the templates in this package are
trusted markup.
"""

from collections.abc import Iterable

from hyperhive_core.cli._safe import html_escape_literal


class Html(str):
    """Markup that is safe to put in a page as it is (built by `render`, `join` or `esc`)."""

    __slots__ = ()


def esc(value: object) -> Html:
    """`value` as text in a page: escaped, unless it is `Html` already."""
    if isinstance(value, Html):
        return value
    return Html(html_escape_literal(str(value)))


def render(template: str, /, **values: object) -> Html:
    """Fill a literal `str.format` template, escaping every value that is not `Html`."""
    return Html(template.format_map({name: esc(value) for name, value in values.items()}))


def join(parts: Iterable[Html], sep: str = "") -> Html:
    """Concatenate markup."""
    return Html(sep.join(parts))


def attrs_data(**values: object) -> Html:
    """`data-*` attributes (underscores become dashes), escaped."""
    return join(render(' data-{k}="{v}"', k=Html(name.replace("_", "-")), v=value) for name, value in values.items())
