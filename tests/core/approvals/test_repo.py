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
