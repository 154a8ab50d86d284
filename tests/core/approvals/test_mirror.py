"""The state repo as a mirror of a desired remote: writes reach the remote first by compare-and-swap,
a fetch brings others' changes, an outage keeps the last main and says since when, and a URL's
credentials never reach an error."""

from pathlib import Path

import pytest

from hyperhive_core.approvals.mirror import DesiredMirror
from hyperhive_core.approvals.repo import MAIN, Author, StateRepo, redact_url
from hyperhive_core.errors import StateRepoError
from tests.core.approvals._git import git

ADA = Author("ada", "ada@example.org")


async def mirror_of(remote: Path, path: Path) -> StateRepo:
    repo = StateRepo(path, remote=str(remote))
    await repo.ensure()
    return repo


async def test_two_hosts_moving_main_at_once_one_wins_and_the_other_is_told_main_moved(short_tmpdir: Path) -> None:
    remote = short_tmpdir / "desired.git"
    await git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    a = await mirror_of(remote, short_tmpdir / "a.git")
    b = await mirror_of(remote, short_tmpdir / "b.git")
    first = await a.commit(parent=None, changes={"a.txt": b"a\n"}, author=ADA, message="first")
    assert await a.move(MAIN, first, None, reason="first")
    assert await b.fetch()  # b sees main move
    assert await b.rev() == first
    # Both write on the same main: the remote takes one, the other is told main moved and has it now.
    ours = await a.commit(parent=first, changes={"a.txt": b"ours\n"}, author=ADA, message="ours")
    theirs = await b.commit(parent=first, changes={"b.txt": b"theirs\n"}, author=ADA, message="theirs")
    assert await a.move(MAIN, ours, first, reason="ours")
    assert not await b.move(MAIN, theirs, first, reason="theirs")
    assert await b.rev() == ours
    # The retry from what it has now lands, and nothing is lost.
    again = await b.commit(parent=ours, changes={"b.txt": b"theirs\n"}, author=ADA, message="theirs again")
    assert await b.move(MAIN, again, ours, reason="theirs again")
    assert (await git("--git-dir", str(remote), "rev-parse", "main")).strip() == again
    assert set((await b.snapshot(again)).files) == {"a.txt", "b.txt"}
    # A proposal's branch reaches the remote before it exists here.
    branch = await a.commit(
        parent=ours, changes={"c.txt": b"c\n"}, author=ADA, message="p", ref="refs/heads/proposals/1"
    )
    assert (await git("--git-dir", str(remote), "rev-parse", "proposals/1")).strip() == branch


async def test_a_remote_that_stops_answering_keeps_the_last_main_and_says_since_when(short_tmpdir: Path) -> None:
    remote = short_tmpdir / "desired.git"
    await git("init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    repo = await mirror_of(remote, short_tmpdir / "mirror.git")
    first = await repo.commit(parent=None, changes={"a.txt": b"a\n"}, author=ADA, message="first")
    moved: list[str] = []
    mirror = DesiredMirror(repo, interval_s=60, on_moved=moved.append)
    await mirror.start()
    assert await repo.rev() is None  # nothing seeded: the mirror had no main
    assert await repo.move(MAIN, first, None, reason="first")
    away = remote.rename(short_tmpdir / "away.git")
    await mirror.sync()
    await mirror.sync()
    assert await repo.rev() == first
    assert mirror.staleness is not None
    assert mirror.staleness.startswith("the desired state is stale since ")
    # Writes are refused while it is away, and say so.
    second = await repo.commit(parent=first, changes={"a.txt": b"b\n"}, author=ADA, message="second")
    with pytest.raises(StateRepoError, match="cannot push refs/heads/main to the desired remote"):
        await repo.move(MAIN, second, first, reason="second")
    assert await repo.rev() == first
    away.rename(remote)
    await mirror.sync()
    assert (mirror.staleness, moved) == (None, [])
    # Someone else's push is fetched and wakes the reconciler.
    laptop = await mirror_of(remote, short_tmpdir / "laptop.git")
    await laptop.fetch()
    pushed = await laptop.commit(parent=first, changes={"l.txt": b"l\n"}, author=ADA, message="from a laptop")
    assert await laptop.move(MAIN, pushed, first, reason="from a laptop")
    await mirror.sync()
    assert (await repo.rev(), moved) == (pushed, ["main moved on the desired remote"])


async def test_a_password_in_the_desired_remote_never_reaches_an_error(short_tmpdir: Path) -> None:
    url = "https://ada:s3cret-token@127.0.0.1:9/hive.git"
    assert redact_url(url) == "https://***@127.0.0.1:9/hive.git"
    repo = await mirror_of(Path(url), short_tmpdir / "mirror.git")
    repo.remote = url
    mirror = DesiredMirror(repo, interval_s=60, on_moved=lambda _: None)
    with pytest.raises(StateRepoError) as caught:
        await mirror.start()
    assert "s3cret" not in str(caught.value)
    assert "https://***@127.0.0.1:9/hive.git" in str(caught.value)
    assert "--desired-remote" in str(caught.value)
