"""The state repo's git verbs: commits made with fast-import, main moved only by compare-and-swap,
branches read from git's own ref files (loose or packed) the way git reads them."""

from pathlib import Path

from hyperhive_core.approvals.repo import MAIN, Author, StateRepo, blob_id, trailers
from tests.core.approvals._git import git

ADA = Author("ada", "ada@example.org")


async def test_main_moves_only_from_the_commit_it_was_read_at(short_tmpdir: Path) -> None:
    repo = StateRepo(short_tmpdir / "hive.git")
    assert await repo.ensure()
    assert not await repo.ensure()
    assert await repo.rev() is None
    first = await repo.commit(parent=None, changes={"a.txt": b"one\n"}, author=ADA, message="one")
    assert await repo.move(MAIN, first, None, reason="create")
    assert not await repo.move(MAIN, first, None, reason="create again")  # it exists now
    second = await repo.commit(parent=first, changes={"a.txt": b"two\n", "b.txt": b"b\n"}, author=ADA, message="two")
    other = await repo.commit(parent=first, changes={"a.txt": None}, author=ADA, message="other\n\nKey: value")
    assert await repo.move(MAIN, second, first, reason="two")
    assert not await repo.move(MAIN, other, first, reason="lost the race")
    assert await repo.rev() == second
    assert await repo.changed_paths(first, second) == {"a.txt", "b.txt"}
    assert (await repo.snapshot(other)).files == {}
    assert trailers(await repo.message(other)) == {"Key": "value"}
    # The cache's blob ids are git's own.
    assert (await repo.snapshot(second)).files["a.txt"] == blob_id(b"two\n")
    assert (await git("--git-dir", str(repo.path), "rev-parse", "main:a.txt")).strip() == blob_id(b"two\n")


async def test_branches_are_read_from_loose_and_packed_refs_alike(short_tmpdir: Path) -> None:
    repo = StateRepo(short_tmpdir / "hive.git")
    await repo.ensure()
    commit = await repo.commit(parent=None, changes={"a.txt": b"a\n"}, author=ADA, message="a")
    await repo.move(MAIN, commit, None, reason="create")
    assert (repo.path / MAIN).is_file()
    await git("--git-dir", str(repo.path), "pack-refs", "--all")
    assert not (repo.path / MAIN).exists()
    assert await repo.rev() == commit
    assert await repo.rev("refs/heads/nothing") is None
    assert await repo.resolve("main") == commit


async def test_the_log_reads_mains_first_parents_a_page_at_a_time_whatever_the_messages_hold(
    short_tmpdir: Path,
) -> None:
    repo = StateRepo(short_tmpdir / "hive.git")
    await repo.ensure()
    assert (await repo.count(), await repo.log()) == (0, [])
    rev: str | None = None
    # A message with what a parser of `git log` output might take for separators or headers.
    tricky = "tricky\x1e\x1f\x00\n\nparent 0000000000000000000000000000000000000000\nauthor x <y> 1 +0000"
    for n in range(60):
        message = tricky if n == 30 else f"change {n}\n\nProposal-Id: {n}"
        new = await repo.commit(
            parent=rev, changes={f"agents/a{n % 7}.toml": f"n = {n}\n".encode()}, author=ADA, message=message
        )
        assert await repo.move(MAIN, new, rev, reason=f"change {n}")
        rev = new
    side = await repo.commit(parent=rev, changes={"side.txt": b"side\n"}, author=ADA, message="side")
    merge = await repo.commit(parent=rev, changes={"side.txt": b"side\n"}, author=ADA, message="merge side", merge=side)
    assert await repo.move(MAIN, merge, rev, reason="merge")
    assert await repo.count() == 61  # the side commit is not a change of main of its own
    newest = await repo.log(limit=2)
    assert [c.subject for c in newest] == ["merge side", "change 59"]
    assert newest[0].parents == (rev, side)
    assert (newest[0].merged_author, newest[1].merged_author) == ("ada", "")
    assert (newest[0].author, newest[0].email) == ("ada", "ada@example.org")
    assert newest[1].trailers == {"Proposal-Id": "59"}
    page = await repo.log(skip=20, limit=20)
    assert [c.subject for c in page][:2] == ["change 40", "change 39"]
    assert len(page) == 20
    [odd] = [c for c in page if c.subject.startswith("tricky")]
    assert odd.author == "ada"
    assert len(odd.parents) == 1
    assert await repo.log(skip=61, limit=20) == []
    # The diff of a merge is what it brought to main; of the first commit, all it holds.
    diff, cut = await repo.commit_diff(merge, max_bytes=10_000)
    assert (diff.count("diff --git"), "+side" in diff, cut) == (1, True, False)
    first = (await repo.log(skip=60, limit=1))[0]
    diff, _ = await repo.commit_diff(first.rev, max_bytes=10_000)
    assert "+n = 0" in diff


async def test_a_huge_commit_diff_is_read_only_up_to_the_bound(short_tmpdir: Path) -> None:
    repo = StateRepo(short_tmpdir / "hive.git")
    await repo.ensure()
    huge = b"".join(b"line %d\n" % i for i in range(200_000))
    commit = await repo.commit(parent=None, changes={"big.txt": huge}, author=ADA, message="big")
    diff, cut = await repo.commit_diff(commit, max_bytes=4096)
    assert cut
    assert len(diff.encode()) <= 4096
    assert diff.startswith("diff --git a/big.txt b/big.txt")
