"""The state repo as a mirror of the desired remote every host shares (GitOps, as Flux and Argo CD do).

At start the mirror takes the remote's branches (or gives an empty remote this host's main); then
it fetches every `desired_fetch_s`, and a fetch that moved main wakes the reconciler. While the
remote cannot be reached, the daemon keeps reconciling the main it fetched last: the outage is
logged once, and `hivectl status` and `plan` say since when the desired state is stale.
"""

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import anyio

from hyperhive_core.approvals.repo import StateRepo, redact_url
from hyperhive_core.errors import StateRepoError

logger = logging.getLogger(__name__)


class DesiredMirror:
    """Keeps the state repo in step with the desired remote."""

    def __init__(self, repo: StateRepo, *, interval_s: float, on_moved: Callable[[str], None]) -> None:
        if repo.remote is None:
            raise ValueError("a mirror needs a state repo with a desired remote")
        self._repo = repo
        self.remote = redact_url(repo.remote)
        self._interval_s = interval_s
        self._on_moved = on_moved
        self.fetched_at: float | None = None
        # When the remote stopped answering (None: it answers), and what git said last.
        self.stale_since: float | None = None
        self.error = ""

    async def start(self) -> None:
        """Take the remote's branches (an empty remote is given this repo's main).

        Raises:
            StateRepoError: the remote cannot be reached and this host has no main of it yet.
        """
        try:
            async with self._repo.lock:
                if await self._repo.remote_has_main():
                    await self._repo.fetch()
                else:
                    await self._repo.seed()
        except StateRepoError as exc:
            if await self._repo.rev() is None:
                raise StateRepoError(
                    f"cannot reach the desired remote {self.remote} and this host has no copy of its main yet: "
                    f"{exc}; check the URL and the daemon's access to it (--desired-remote)"
                ) from exc
            self._failed(exc)
            return
        self._answered()

    async def sync(self) -> None:
        """One fetch; a main that moved wakes the reconciler, a remote that does not answer is noted."""
        try:
            async with self._repo.lock:
                moved = await self._repo.fetch()
        except StateRepoError as exc:
            self._failed(exc)
            return
        self._answered()
        if moved:
            self._on_moved("main moved on the desired remote")

    async def serve(self) -> None:
        """Fetch every interval until cancelled."""
        while True:
            await anyio.sleep(self._interval_s)
            await self.sync()

    def _failed(self, exc: StateRepoError) -> None:
        self.error = str(exc)
        if self.stale_since is None:
            self.stale_since = time.time()
            # Once per outage: a remote down for hours must not fill the log.
            logger.warning("%s; the hive keeps running the main it fetched last until the remote answers", exc)

    def _answered(self) -> None:
        if self.stale_since is not None:
            logger.info(
                "the desired remote %s answers again (after %.0f s)", self.remote, time.time() - self.stale_since
            )
        self.stale_since, self.error, self.fetched_at = None, "", time.time()

    @property
    def staleness(self) -> str | None:
        """Why main may be behind the desired remote (None: it is as fresh as the last fetch)."""
        if self.stale_since is None:
            return None
        since = datetime.fromtimestamp(self.stale_since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"the desired state is stale since {since}: {self.error}"
