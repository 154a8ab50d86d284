"""The state repo: a bare git repository, `<state dir>/hive.git`, driven through the `git` CLI.

Bare, so nothing here has a work tree to get dirty, and an operator's `git push` to `main` is
accepted like a push to any server. Commits are written with `git fast-import` (one process, the
objects, the commit) onto a scratch ref, and `main` moves only by `git update-ref NEW OLD`: a
compare-and-swap that loses, rather than overwrites, when someone else moved main meanwhile.
git runs with the host's and the user's git config ignored, so no hook, signing or editor
setting of the daemon's user changes what it writes. This module is the one place git's failures
become `StateRepoError`.
"""

import dataclasses
import hashlib
import logging
import os
import re
import subprocess
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from hyperhive_core.errors import StateRepoError, UnknownRevisionError

logger = logging.getLogger(__name__)

MAIN = "refs/heads/main"
PROPOSALS = "refs/heads/proposals/"
SCRATCH = "refs/hyperhive/scratch"
ZERO = "0" * 40
KEEP_SNAPSHOTS = 32
_SHA = re.compile(r"[0-9a-f]{40}")


class _Unknown:
    """The ref files could not say: ask git."""


_UNKNOWN = _Unknown()
KEEP_BLOBS = 4096
# Bounds every git call: a hung git (a stuck lock, a full disk) fails the step, never the daemon.
GIT_TIMEOUT_S = 60.0
_AUTHOR = re.compile(r"(?P<name>.*) <(?P<email>[^>]*)> (?P<at>\d+) [+-]\d{4}")


@dataclass(frozen=True, slots=True)
class Author:
    """Who a commit says made it."""

    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The files of one commit: path -> blob id."""

    rev: str
    files: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit as `git log` shows it: who made it, when, and what it says."""

    rev: str
    parents: tuple[str, ...]
    author: str
    email: str
    at: float
    message: str
    merged_author: str = ""  # of a merge: who wrote the commit it merged (the proposer)

    @property
    def subject(self) -> str:
        """The message's opening line."""
        return self.message.split("\n", 1)[0]

    @property
    def trailers(self) -> dict[str, str]:
        """The message's trailers (`Proposal-Id`, `Requested-By`...)."""
        return trailers(self.message) if "\n\n" in self.message.strip() else {}


def parse_commit(rev: str, raw: bytes) -> CommitInfo:
    """A commit object's text (as `git cat-file commit` prints it) read into a `CommitInfo`."""
    text = raw.decode(errors="replace")
    head, _, message = text.partition("\n\n")
    parents: list[str] = []
    author, email, at = "?", "", 0.0
    for line in head.splitlines():
        key, _, value = line.partition(" ")
        if key == "parent":
            parents.append(value)
        elif key == "author" and (found := _AUTHOR.fullmatch(value)) is not None:
            author, email, at = found["name"], found["email"], float(found["at"])
    return CommitInfo(rev, tuple(parents), author, email, at, message)


def blob_id(content: bytes) -> str:
    """The id git gives a file's content (sha1 of a blob header and the bytes)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def redact_url(url: str) -> str:
    """A git URL without the credentials it may carry (`https://user:token@host/…` -> `https://***@host/…`)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"


def proposal_ref(proposal: int) -> str:
    """The branch a proposal's commit lives on."""
    return f"{PROPOSALS}{proposal}"


def trailers(message: str) -> dict[str, str]:
    """The `Key: value` lines of a commit message's last paragraph."""
    found: dict[str, str] = {}
    for line in message.strip().split("\n\n")[-1].splitlines():
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key:
            found[key] = value.strip()
    return found


class StateRepo:
    """The bare repository holding the desired hive, and the git verbs the daemon needs."""

    def __init__(self, path: Path, *, git: str = "git", remote: str | None = None) -> None:
        self.path = path
        self._git_exe = git
        # The desired state every host shares (a git URL): this repo is its mirror, and every write
        # reaches it (compare-and-swap) before a ref moves here. None: this repo is the desired state.
        self.remote = remote
        env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
        env |= {
            "GIT_DIR": str(path),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
        if remote is not None:
            # A prompt (a password, an unknown host key) has nobody to answer it: fail at once instead.
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
        self._env = env
        # Serialises this daemon's writes; other writers (a push) are met by update-ref's compare-and-swap.
        self.lock = anyio.Lock()
        # Commits and blobs never change once written: what was read (or written) here is kept,
        # so reading main right after our own commit costs no git process.
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        self._parents: dict[str, list[str]] = {}

    def _remember(self, snapshot: Snapshot) -> Snapshot:
        self._snapshots[snapshot.rev] = snapshot
        self._snapshots.move_to_end(snapshot.rev)
        while len(self._snapshots) > KEEP_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return snapshot

    def _remember_blob(self, blob: str, content: bytes) -> None:
        self._blobs[blob] = content
        self._blobs.move_to_end(blob)
        while len(self._blobs) > KEEP_BLOBS:
            self._blobs.popitem(last=False)

    async def _git(
        self, *args: str, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git on the repo; the one place its failures become `StateRepoError`."""
        try:
            with anyio.fail_after(GIT_TIMEOUT_S):
                return await anyio.run_process([self._git_exe, *args], input=stdin, env=self._env, check=check)
        except subprocess.CalledProcessError as exc:
            stderr = (
                self.redact((exc.stderr or b"").decode(errors="replace").strip()) or f"exit status {exc.returncode}"
            )
            raise StateRepoError(f"git {args[0]} failed in the state repo {self.path}: {stderr}") from exc
        except TimeoutError as exc:
            raise StateRepoError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g} s in {self.path}") from exc
        except OSError as exc:
            raise StateRepoError(
                f"cannot run {self._git_exe} ({exc.strerror or exc}): the state repo needs git; install it "
                "(apt-get install git) or put it on the daemon's PATH"
            ) from exc

    async def _git_head(self, *args: str, max_bytes: int) -> tuple[bytes, bool]:
        """Run git and keep at most `max_bytes` of its output (True: there was more); git is stopped
        past that, so a huge commit costs a bounded read, never the daemon's memory."""
        out = bytearray()
        cut = False
        try:
            with anyio.fail_after(GIT_TIMEOUT_S):
                async with await anyio.open_process(
                    [self._git_exe, *args], env=self._env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
                ) as process:
                    assert process.stdout is not None
                    assert process.stderr is not None
                    async for chunk in process.stdout:
                        out += chunk
                        if len(out) > max_bytes:
                            cut = True
                            process.kill()
                            break
                    errors = b"" if cut else b"".join([chunk async for chunk in process.stderr])
                    code = await process.wait()
        except TimeoutError as exc:
            raise StateRepoError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g} s in {self.path}") from exc
        except OSError as exc:
            raise StateRepoError(f"cannot run {self._git_exe} ({exc.strerror or exc}) on {self.path}") from exc
        if not cut and code != 0:
            stderr = errors.decode(errors="replace").strip() or f"exit status {code}"
            raise StateRepoError(f"git {args[0]} failed in the state repo {self.path}: {stderr}")
        return bytes(out[:max_bytes]), cut

    async def ensure(self) -> bool:
        """Create the bare repository if it is missing; True when this call created it."""
        if await anyio.Path(self.path / "HEAD").exists():
            return False
        await anyio.Path(self.path).mkdir(parents=True, exist_ok=True, mode=0o700)
        await self._git("init", "--quiet", "--bare", "--initial-branch=main", str(self.path))
        # A reflog for main, so `git reflog main` in the repo shows every move, pushes included.
        await self._git("config", "core.logAllRefUpdates", "always")
        await anyio.Path(self.path / "description").write_text("hyperhive: the desired hive (main) and proposals\n")
        return True

    async def rev(self, ref: str = MAIN) -> str | None:
        """The commit `ref` points at, or None when it does not exist."""
        if ref.startswith("refs/heads/"):
            found = await anyio.to_thread.run_sync(self._read_ref, ref)
            if not isinstance(found, _Unknown):
                return found
        done = await self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if done.returncode != 0:
            return None
        return done.stdout.decode().strip() or None

    def _read_ref(self, ref: str) -> "str | _Unknown | None":
        """A branch read from the ref files as git keeps them (a loose file, else packed-refs): no git
        process on the daemon's hottest read. Anything unusual (a symbolic ref, the reftable format)
        is left to git. git replaces both files by rename, so a read never sees half of one."""
        if (self.path / "reftable").exists():
            return _UNKNOWN
        try:
            text = (self.path / ref).read_text().strip()
        except FileNotFoundError:
            text = None
        except OSError:
            return _UNKNOWN
        if text is not None:
            return text if _SHA.fullmatch(text) else _UNKNOWN
        try:
            packed = (self.path / "packed-refs").read_text()
        except FileNotFoundError:
            return None
        except OSError:
            return _UNKNOWN
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha if _SHA.fullmatch(sha) else _UNKNOWN
        return None

    async def resolve(self, rev: str) -> str:
        """The commit a revision (a sha, `main~2`, a tag...) names.

        Raises:
            UnknownRevisionError: it names no commit.
        """
        if not rev or rev.startswith("-") or any(c.isspace() for c in rev):
            raise UnknownRevisionError(rev)
        found = await self.rev(rev)
        if found is None:
            raise UnknownRevisionError(rev)
        return found

    async def snapshot(self, rev: str) -> Snapshot:
        """Every file of commit `rev` (a full sha)."""
        if (known := self._snapshots.get(rev)) is not None:
            return known
        done = await self._git("ls-tree", "-r", "-z", "--full-tree", rev)
        files: dict[str, str] = {}
        for entry in done.stdout.decode().split("\0"):
            if entry:
                meta, _, path = entry.partition("\t")
                _mode, kind, blob = meta.split()
                if kind == "blob":
                    files[path] = blob
        return self._remember(Snapshot(rev, files)) if len(rev) == 40 else Snapshot(rev, files)

    async def blobs(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The contents of blobs, by id, in one git process."""
        found: dict[str, bytes] = {i: self._blobs[i] for i in ids if i in self._blobs}
        wanted = [i for i in dict.fromkeys(ids) if i not in found]
        if not wanted:
            return found
        done = await self._git("cat-file", "--batch", stdin="".join(f"{i}\n" for i in wanted).encode())
        out = done.stdout
        at = 0
        for blob in wanted:
            end = out.index(b"\n", at)
            header = out[at:end].decode().split()
            if len(header) != 3:
                raise StateRepoError(f"git cat-file found no object {blob} in {self.path}")
            size = int(header[2])
            found[blob] = out[end + 1 : end + 1 + size]
            self._remember_blob(blob, found[blob])
            at = end + 1 + size + 1
        return found

    async def commit(
        self,
        *,
        parent: str | None,
        changes: Mapping[str, bytes | None],
        author: Author,
        message: str,
        committer: Author | None = None,
        merge: str | None = None,
        ref: str = SCRATCH,
    ) -> str:
        """Write a commit onto `ref` (never main): `parent`'s files with `changes` (None deletes); its id.

        With a desired remote, a commit for a branch (a proposal's) is pushed there before the branch
        moves here.

        Raises:
            StateRepoError: git failed, or the remote refused the branch.
        """
        if self.remote is not None and ref != SCRATCH:
            commit = await self.commit(
                parent=parent, changes=changes, author=author, message=message, committer=committer, merge=merge
            )
            if not await self.move(ref, commit, await self.rev(ref), reason=message.split("\n", 1)[0]):
                raise StateRepoError(f"{ref} moved on the desired remote {self.redact(self.remote)} meanwhile")
            return commit
        now = int(time.time())
        who = committer or author
        text = message.rstrip("\n").encode() + b"\n"
        stream = [b"feature done\n", f"reset {ref}\n".encode(), f"commit {ref}\nmark :1\n".encode()]
        stream.append(f"author {author.name} <{author.email}> {now} +0000\n".encode())
        stream.append(f"committer {who.name} <{who.email}> {now} +0000\n".encode())
        stream.append(f"data {len(text)}\n".encode() + text)
        if parent is not None:
            stream.append(f"from {parent}\n".encode())
        if merge is not None:
            stream.append(f"merge {merge}\n".encode())
        for path, content in sorted(changes.items()):
            if content is None:
                stream.append(f"D {path}\n".encode())
            else:
                stream.append(f"M 100644 inline {path}\ndata {len(content)}\n".encode() + content + b"\n")
        stream.append(b"\nget-mark :1\ndone\n")
        done = await self._git("fast-import", "--quiet", "--force", stdin=b"".join(stream))
        commit = done.stdout.decode().strip()
        self._parents[commit] = [p for p in (parent, merge) if p is not None]
        while len(self._parents) > KEEP_SNAPSHOTS:
            del self._parents[next(iter(self._parents))]
        # What the new commit holds is known without asking git: its parent's files with the changes.
        base = self._snapshots.get(parent) if parent is not None else Snapshot("", {})
        if base is not None:
            files = dict(base.files)
            for path, content in changes.items():
                if content is None:
                    files.pop(path, None)
                else:
                    files[path] = blob_id(content)
                    self._remember_blob(files[path], content)
            self._remember(Snapshot(commit, files))
        return commit

    async def move(self, ref: str, new: str, old: str | None, *, reason: str) -> bool:
        """Point `ref` at `new` only if it still points at `old` (None: only if it does not exist): on the
        desired remote first, when there is one, then here. The one primitive every write goes through.

        Returns False when another writer moved it first; nothing changed then.

        Raises:
            StateRepoError: git failed, or the desired remote cannot be reached (nothing changed).
        """
        if self.remote is not None:
            if not await self._push(ref, new, old):
                await self.fetch()  # the remote moved: the caller's retry starts from what it has now
                return False
            await self._git("update-ref", "-m", reason, ref, new, old or ZERO, check=False)
            # A fetch may have brought the remote's ref (ours, or a later one) here already: the
            # remote holds the change, and the next fetch makes this mirror agree with it.
            return True
        done = await self._git("update-ref", "-m", reason, ref, new, old or ZERO, check=False)
        if done.returncode == 0:
            return True
        if await self.rev(ref) != old:
            return False
        stderr = done.stderr.decode(errors="replace").strip()
        raise StateRepoError(f"git update-ref {ref} failed in the state repo {self.path}: {stderr}")

    # the desired remote

    def redact(self, text: str) -> str:
        """`text` with the desired remote's credentials (user:password@ of its URL) taken out."""
        if self.remote is None:
            return text
        safe = redact_url(self.remote)
        return text.replace(self.remote, safe) if safe != self.remote else text

    async def _push(self, ref: str, new: str, old: str | None) -> bool:
        """Compare-and-swap `ref` on the desired remote: `new` only if it is still `old` (None: absent).

        Returns False when the remote's ref had moved (someone else pushed first).

        Raises:
            StateRepoError: the remote cannot be reached or refused for another reason.
        """
        assert self.remote is not None
        lease = f"--force-with-lease={ref}:{old or ''}"
        done = await self._git("push", "--porcelain", "--quiet", lease, self.remote, f"{new}:{ref}", check=False)
        if done.returncode == 0:
            return True
        out = done.stdout.decode(errors="replace")
        # Refused by the lease, or by the remote's own ref lock (a push landed between the lease's check
        # and the update): either way the ref is not `old` any more, which is a lost race.
        if any(line.startswith("!") for line in out.splitlines()) and await self._remote_rev(ref) != old:
            return False
        stderr = self.redact(done.stderr.decode(errors="replace").strip() or out.strip())
        raise StateRepoError(
            f"cannot push {ref} to the desired remote {redact_url(self.remote)} (nothing changed): {stderr}"
        )

    async def fetch(self) -> bool:
        """Make this mirror's branches the desired remote's (main, the proposals); True when main moved.

        Raises:
            StateRepoError: the remote cannot be reached (this mirror keeps what it had).
        """
        assert self.remote is not None
        before = await self.rev()
        await self._git("fetch", "--quiet", "--prune", "--no-tags", self.remote, "+refs/heads/*:refs/heads/*")
        return await self.rev() != before

    async def seed(self) -> None:
        """Give an empty desired remote this repo's main (a host's hive becoming the shared one).

        Raises:
            StateRepoError: the remote cannot be reached.
        """
        assert self.remote is not None
        main = await self.rev()
        if main is not None and not await self._push(MAIN, main, None):
            await self.fetch()

    async def remote_has_main(self) -> bool:
        """Whether the desired remote has a main branch.

        Raises:
            StateRepoError: the remote cannot be reached.
        """
        return await self._remote_rev(MAIN) is not None

    async def _remote_rev(self, ref: str) -> str | None:
        """The commit `ref` points at on the desired remote (None: it has no such ref)."""
        assert self.remote is not None
        done = await self._git("ls-remote", self.remote, ref)
        for line in done.stdout.decode().splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None

    async def changed_paths(self, old: str, new: str) -> set[str]:
        """The files that differ between two commits."""
        if old == new:
            return set()
        done = await self._git("diff", "--name-only", "--no-renames", "-z", old, new)
        return {path for path in done.stdout.decode().split("\0") if path}

    async def diff(self, old: str, new: str) -> str:
        """A unified diff between two commits, as text."""
        done = await self._git("diff", "--no-color", "--no-ext-diff", "--no-renames", old, new)
        return done.stdout.decode(errors="replace")

    async def parents(self, rev: str) -> list[str]:
        """The parents of commit `rev` (remembered for the commits this daemon wrote)."""
        if (known := self._parents.get(rev)) is not None:
            return known
        done = await self._git("rev-list", "--parents", "-n", "1", rev)
        return done.stdout.decode().split()[1:]

    async def is_ancestor(self, ancestor: str, rev: str) -> bool:
        """Whether commit `ancestor` is in `rev`'s history (or is `rev`)."""
        done = await self._git("merge-base", "--is-ancestor", ancestor, rev, check=False)
        if done.returncode > 1:
            stderr = done.stderr.decode(errors="replace").strip()
            raise StateRepoError(f"git merge-base failed in the state repo {self.path}: {stderr}")
        return done.returncode == 0

    async def message(self, rev: str) -> str:
        """The commit message of `rev`."""
        done = await self._git("cat-file", "commit", rev)
        return done.stdout.decode(errors="replace").split("\n\n", 1)[-1]

    async def merged_proposals(self) -> set[int]:
        """The proposals whose branch main contains (merged by the daemon, or by hand with git)."""
        done = await self._git("for-each-ref", f"--merged={MAIN}", "--format=%(refname)", PROPOSALS)
        found: set[int] = set()
        for line in done.stdout.decode().splitlines():
            number = line.removeprefix(PROPOSALS)
            if number.isdigit():
                found.add(int(number))
        return found

    async def ref_signature(self) -> tuple[object, ...]:
        """A cheap token that changes whenever main may have moved (a loose ref rewritten, refs packed)."""
        signature: list[object] = []
        for path in (self.path / MAIN, self.path / "packed-refs"):
            try:
                st = await anyio.Path(path).stat()
                signature.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                signature.append(None)
        return tuple(signature)

    # the audit trail: what the history view reads

    async def count(self, ref: str = MAIN) -> int:
        """How many commits `ref` has along its first parents (0 when it does not exist)."""
        if await self.rev(ref) is None:
            return 0
        done = await self._git("rev-list", "--count", "--first-parent", ref)
        return int(done.stdout.decode().strip() or 0)

    async def log(self, ref: str = MAIN, *, skip: int = 0, limit: int = 50) -> list[CommitInfo]:
        """`ref`'s commits along its first parents, newest first: `limit` of them after `skip`.

        Every change of main is one of these (a merged proposal is its merge commit). The commit
        objects are read whole with `cat-file --batch`, so nothing in a message (the proposer writes
        part of it) can be taken for a separator.
        """
        if limit <= 0 or await self.rev(ref) is None:
            return []
        listed = await self._git("rev-list", "--first-parent", f"--skip={skip}", f"--max-count={limit}", ref)
        revs = listed.stdout.decode().split()
        if not revs:
            return []
        found = await self._commits(revs)
        # A merge's own author approved it; the commit it merged says who proposed it.
        merged = await self._commits(list(dict.fromkeys(c.parents[1] for c in found if len(c.parents) > 1)))
        side = {c.rev: c.author for c in merged}
        return [
            dataclasses.replace(c, merged_author=side.get(c.parents[1], "")) if len(c.parents) > 1 else c for c in found
        ]

    async def _commits(self, revs: Sequence[str]) -> list[CommitInfo]:
        """Commits read whole, in one git process."""
        if not revs:
            return []
        done = await self._git("cat-file", "--batch", stdin="".join(f"{rev}\n" for rev in revs).encode())
        out, at, found = done.stdout, 0, list[CommitInfo]()
        for rev in revs:
            end = out.index(b"\n", at)
            header = out[at:end].decode().split()
            if len(header) != 3 or header[1] != "commit":
                raise StateRepoError(f"git cat-file found no commit {rev} in {self.path}")
            size = int(header[2])
            found.append(parse_commit(rev, out[end + 1 : end + 1 + size]))
            at = end + 1 + size + 1
        return found

    async def commit_info(self, rev: str) -> CommitInfo:
        """One commit (a full sha).

        Raises:
            UnknownRevisionError: it names no commit.
        """
        if not _SHA.fullmatch(rev):
            raise UnknownRevisionError(rev)
        done = await self._git("cat-file", "commit", rev, check=False)
        if done.returncode != 0:
            raise UnknownRevisionError(rev)
        return parse_commit(rev, done.stdout)

    async def commit_diff(self, rev: str, *, max_bytes: int) -> tuple[str, bool]:
        """What commit `rev` changed against its first parent (the first commit: against nothing),
        as a unified diff of at most `max_bytes`; True when it was cut there."""
        out, cut = await self._git_head(
            "diff-tree", "-p", "--root", "--no-commit-id", "--no-color", "--no-ext-diff", "--no-renames",
            "--diff-merges=first-parent", rev, max_bytes=max_bytes,
        )  # fmt: skip
        return out.decode(errors="replace"), cut
