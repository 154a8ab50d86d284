"""The history view: main's commits in the state repo, newest first, a page at a time, each with its diff.

This is the hive's audit trail: who changed it (the operator, the manager through an approval, a
person with plain git), what, when, and which proposal (the `Proposal-Id` trailer). Commit
messages and authors can come from the manager or from anyone who pushes: all of it is escaped.
"""

import time
from collections.abc import Sequence

from hyperhive_core.approvals.repo import CommitInfo
from hyperhive_core.dashboard.diffs import diff_html
from hyperhive_core.dashboard.html import Html, join, render

EMPTY = Html("")
PER_PAGE = 50
# Trailers worth a chip in the list (the rest show in the commit's message).
CHIPS = ("Proposal-Id", "Approved-By", "Proposed-By", "Requested-By")


def _when(at: float) -> Html:
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    return render(
        '<time datetime="{iso}" title="{iso}">{t}</time>',
        iso=iso,
        t=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)),
    )


def commit_row(commit: CommitInfo) -> Html:
    """One commit of main: when, who, what, its proposal, and a button that opens its diff."""
    trailers = commit.trailers
    chips = join(
        render('<span class="chip" data-key="{k}">{k}: {v}</span>', k=key, v=trailers[key])
        for key in CHIPS
        if key in trailers
    )
    proposal = trailers.get("Proposal-Id", "")
    return render(
        """<tr class="commit" id="c-{rev}" data-rev="{rev}" data-proposal="{proposal}">
<td><code>{short}</code>{merge}</td><td class="num">{when}</td><td class="who">{author}{proposer}</td>
<td class="subject">{subject}<div>{chips}</div></td>
<td><button type="button" class="link" hx-get="/partials/commit/{rev}" hx-target="#d-{rev}">diff</button></td>
</tr>
<tr class="commit-detail"><td colspan="5" id="d-{rev}"></td></tr>""",
        rev=commit.rev,
        short=commit.rev[:12],
        merge=Html(' <span class="chip">merge</span>') if len(commit.parents) > 1 else EMPTY,
        when=_when(commit.at),
        author=commit.author,
        proposer=render('<div class="dim">merged from {a}</div>', a=commit.merged_author)
        if commit.merged_author
        else EMPTY,
        subject=commit.subject,
        chips=chips,
        proposal=proposal,
    )


def commit_detail(commit: CommitInfo, diff: str, *, cut: bool) -> Html:
    """A commit opened: its whole message and what it changed (against its first parent)."""
    return render(
        """<div class="commit-open"><pre class="message">{message}</pre>
<p class="dim">{author} &lt;{email}&gt;, {parents}</p>{diff}</div>""",
        message=commit.message.rstrip("\n"),
        author=commit.author,
        email=commit.email,
        parents=("parents " + ", ".join(p[:12] for p in commit.parents)) if commit.parents else "the first commit",
        diff=diff_html(diff, cut=cut),
    )


def _pager(page: int, pages: int) -> Html:
    links: list[Html] = []
    if page > 1:
        links.append(render('<a href="/history?page={p}" rel="prev">← newer</a>', p=page - 1))
    links.append(render('<span class="dim">page {p} of {n}</span>', p=page, n=max(pages, 1)))
    if page < pages:
        links.append(render('<a href="/history?page={p}" rel="next">older →</a>', p=page + 1))
    return render('<nav class="pager">{links}</nav>', links=join(links, " "))


def history_view(commits: Sequence[CommitInfo], *, total: int, page: int, repo: str) -> Html:
    """The history view: a page of main's commits, newest first."""
    pages = (total + PER_PAGE - 1) // PER_PAGE
    rows = join(commit_row(c) for c in commits) or Html(
        '<tr><td colspan="5" class="empty">no commits on this page</td></tr>'
    )
    return render(
        """<section class="view history">
<h1>History <small>{total} changes of main</small></h1>
<p class="dim">The state repo is plain git: <code>git clone {repo}</code> shows the same.</p>
{pager}
<table class="commits">
<thead><tr><th>commit</th><th>when</th><th>who</th><th>what</th><th></th></tr></thead>
<tbody>{rows}</tbody>
</table>
{pager}
</section>""",
        total=total,
        repo=repo,
        pager=_pager(page, pages),
        rows=rows,
    )
