"""A unified diff as HTML: each line escaped, coloured by what it is (added, removed, hunk, header).

The diffs are of agent files, and the manager (an untrusted principal) writes those: every line
goes through `render`, so markup is text and control characters show as visible escapes.
"""

from hyperhive_core.dashboard.html import Html, join, render

# Past this many characters a diff is cut (with a line saying so); git is asked for no more.
MAX_DIFF_CHARS = 64_000


def _kind(line: str) -> str:
    if line.startswith(("+++", "---", "diff --git", "index ", "new file", "deleted file")):
        return "meta"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    if line.startswith("@@"):
        return "hunk"
    return "ctx"


def diff_html(diff: str, *, cut: bool = False) -> Html:
    """The diff in a `<pre>`, one span a line, like git colours it."""
    if len(diff) > MAX_DIFF_CHARS:
        diff, cut = diff[:MAX_DIFF_CHARS], True
    if not diff.strip():
        return Html('<p class="dim">no change to any file</p>')
    lines = join(
        (render('<span class="{k}">{line}</span>', k=_kind(line), line=line) for line in diff.rstrip("\n").split("\n")),
        "\n",
    )
    more = (
        render('<p class="dim">{w}</p>', w=f"cut at {MAX_DIFF_CHARS:,} characters: git diff in a clone shows it all")
        if cut
        else Html("")
    )
    return render('<pre class="diff">{lines}</pre>{more}', lines=lines, more=more)
