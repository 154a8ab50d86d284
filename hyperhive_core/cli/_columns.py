"""Aligned columns for a long listing, as `kubectl get` prints them: a header, then one line a row.

rich's `Table` measures and wraps every cell (about 0.5 ms each): a hive of 100 agents cost
`hivectl list` half a second of rendering alone. These rows are laid out in one pass over the cells.
In a terminal too narrow for every column, the columns named droppable go first (least useful
first, and a last line says which are hidden); a listing that still does not fit falls back to a
`Table` whose cells fold onto a second line rather than being cut ("ali…").
"""

from collections.abc import Iterator, Sequence

from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Table
from rich.text import Text

# Spaces between two columns.
GAP = 2


class Listing:
    """Rows under a header and a title; rendered as aligned lines, or as a folding `Table` when too wide."""

    def __init__(self, headers: Sequence[str], *, title: str, droppable: Sequence[str] = ()) -> None:
        self.headers = list(headers)
        self.title = title
        self.caption: str | None = None
        # Headers that may be hidden to fit a narrow terminal, the first hidden first.
        self.droppable = list(droppable)
        self._rows: list[list[Text]] = []

    def add_column(self, header: str) -> None:
        """One more column (before any row is added)."""
        self.headers.append(header)

    def add_row(self, *cells: Text | str) -> None:
        """One row: a cell per header."""
        self._rows.append([cell if isinstance(cell, Text) else Text(cell) for cell in cells])

    def widths(self) -> list[int]:
        """Each column's width: its longest cell or header."""
        widths = [len(header) for header in self.headers]
        for row in self._rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], cell.cell_len)
        return widths

    def shown(self, widths: Sequence[int], max_width: int) -> tuple[list[int], bool]:
        """The columns (by index) to show in `max_width`, dropping droppable ones in order; and whether they fit."""
        shown = list(range(len(self.headers)))
        drop = [self.headers.index(h) for h in self.droppable if h in self.headers]
        while sum(widths[i] for i in shown) + GAP * (len(shown) - 1) > max_width:
            if not drop:
                return shown, False
            shown.remove(drop.pop(0))
        return shown, True

    def table(self, shown: Sequence[int]) -> Table:
        """The `shown` columns as a rich `Table` whose cells fold, for a terminal too narrow for the lines."""
        table = Table(*(self.headers[i] for i in shown), title=self.title, title_justify="left", caption=self.caption)
        table.box = None
        for column in table.columns:
            column.overflow = "fold"
        for row in self._rows:
            table.add_row(*(row[i] for i in shown))
        return table

    def lines(self, widths: Sequence[int], shown: Sequence[int]) -> Text:
        """The title, the header and every row's `shown` columns as aligned lines (no trailing spaces)."""
        out = Text(no_wrap=True, overflow="ignore")
        out.append(f"{self.title}\n", style="italic")
        header = (" " * GAP).join(self.headers[i].ljust(widths[i]) for i in shown).rstrip()
        out.append(f"{header}\n", style="bold")
        for row in self._rows:
            for n, i in enumerate(shown):
                out.append_text(row[i])
                if n < len(shown) - 1:
                    out.append(" " * (widths[i] - row[i].cell_len + GAP))
            out.append("\n")
        out.rstrip()
        return out

    def notes(self, shown: Sequence[int]) -> Text:
        """What is hidden and the caption, below the lines: wrapped to the width, never cut."""
        hidden = [h for i, h in enumerate(self.headers) if i not in shown]
        notes = Text()
        if hidden:
            notes.append(f"({', '.join(hidden)} hidden: the terminal is too narrow; --json shows every field)\n", "dim")
        if self.caption:
            notes.append(f"{self.caption}\n", style="dim italic")
        notes.rstrip()
        return notes

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        widths = self.widths()
        shown, fits = self.shown(widths, options.max_width)
        if not fits:
            yield self.table(shown)
            return
        yield self.lines(widths, shown)
        notes = self.notes(shown)
        if notes:
            yield notes
