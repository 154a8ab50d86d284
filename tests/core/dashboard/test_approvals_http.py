"""The approvals and history views over HTTP, with a real daemon, real git and the manager's own socket.

The manager proposes as claude would (its socket); the page's verdicts go through the operator's
toolset like `hivectl approve`/`deny`; the history reads the state repo with git.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from hyperhive_core.client import HiveClient, open_hive_client
from hyperhive_core.states import AgentState, ProposalState, SyncState
from tests.core.dashboard._dash import Dash, running_dashboard
from tests.core.dashboard.test_http import csrf_of
from tests.helpers import IDLE_AGENT

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>\x1b[2J\x1b]0;owned\x07 & "q"'


@dataclass(frozen=True, slots=True)
class Managed:
    dash: Dash
    operator: HiveClient
    manager: HiveClient


@asynccontextmanager
async def managed_dashboard(root: Path) -> AsyncGenerator[Managed]:
    """A daemon with its dashboard and the manager running (idle: the test speaks for it on its socket)."""
    with anyio.fail_after(90):
        async with (
            running_dashboard(root, agent_command=IDLE_AGENT, manager_command=IDLE_AGENT) as dash,
            open_hive_client(dash.config.host_socket) as operator,
        ):
            await operator.spawn_manager()
            async with open_hive_client(dash.config.agent_socket("hm1nd")) as manager:
                yield Managed(dash, operator, manager)


async def test_a_pending_proposal_shows_its_diff_and_plan_and_approving_it_from_the_page_runs_it(
    short_tmpdir: Path,
) -> None:
    async with managed_dashboard(short_tmpdir) as h:
        proposal = await h.manager.propose_spawn("worker", role="count words", reason="the operator wants counts")
        async with h.dash.logged_in() as client:
            page = (await client.get("/approvals")).text
            assert f'id="proposal-{proposal.id}"' in page
            assert "the operator wants counts" in page
            assert f'hx-post="/api/approvals/{proposal.id}/approve"' in page
            # The card loads its diff and plan once shown.
            assert f'hx-get="/partials/approvals/{proposal.id}" hx-trigger="revealed"' in page
            detail = (await client.get(f"/partials/approvals/{proposal.id}")).text
            assert '<span class="add">+role = &quot;count words&quot;</span>' in detail
            assert '<span class="action create">create</span>' in detail
            assert 'href="/approvals" aria-current="page"' in page
            listed = (await client.get("/api/approvals")).json()
            assert [p["id"] for p in listed["pending"]] == [proposal.id]
            seen = page.split("/partials/approvals/watch?seen=", 1)[1].split('"', 1)[0]
            unchanged = await client.get("/partials/approvals/watch", params={"seen": seen})
            assert unchanged.status_code == 204
            headers = {"X-Hyperhive-CSRF": await csrf_of(client), "Origin": h.dash.origin, "HX-Request": "true"}
            approved = await client.post(f"/api/approvals/{proposal.id}/approve", headers=headers)
            assert approved.status_code == 200, approved.text
            assert f"proposal {proposal.id} (spawn worker): applied" in approved.text
            assert approved.headers["HX-Trigger"] == "hive-changed"
            changed = await client.get("/partials/approvals/watch", params={"seen": seen})
            assert (changed.status_code, changed.headers["HX-Trigger"]) == (200, "approvals-changed")
            body = (await client.get("/partials/approvals")).text
            again = await client.post(f"/api/approvals/{proposal.id}/approve", headers=headers)
        assert f'id="decided-{proposal.id}" data-state="applied"' in body
        assert f'id="proposal-{proposal.id}"' not in body
        worker = await h.operator.status("worker")
        assert (worker.state, worker.sync) == (AgentState.RUNNING, SyncState.READY)
        # The first verdict stands, in the tool's own words.
        assert again.status_code == 409
        assert "the first verdict stands" in again.text


async def test_a_denial_from_the_page_needs_a_reason_and_the_manager_hears_it(short_tmpdir: Path) -> None:
    async with managed_dashboard(short_tmpdir) as h:
        proposal = await h.manager.propose_spawn("scout")
        async with h.dash.client() as client:
            blank = await client.post(f"/api/approvals/{proposal.id}/deny", data={"reason": "  "})
            unknown = await client.post("/api/approvals/999/deny", data={"reason": "no"})
            bad_verb = await client.post(f"/api/approvals/{proposal.id}/merge")
            denied = await client.post(f"/api/approvals/{proposal.id}/deny", data={"reason": "not before the release"})
            assert denied.status_code == 200, denied.text
            detail = (await client.get(f"/api/approvals/{proposal.id}")).json()
        assert blank.status_code == 400
        assert "needs a reason" in blank.json()["error"]
        assert unknown.status_code == 409
        assert "999" in unknown.json()["error"]
        assert bad_verb.status_code == 404
        assert "approve or deny" in bad_verb.json()["error"]
        assert detail["proposal"]["state"] == ProposalState.DENIED.value
        assert detail["proposal"]["reason"] == "not before the release"
        told = await h.manager.recv(timeout_s=10)
        assert [(m.sender, m.body) for m in told.messages] == [
            ("operator", f"proposal {proposal.id} (spawn scout): denied by operator: not before the release")
        ]
        assert [a.name for a in await h.operator.list_agents()] == ["hm1nd"]


async def test_a_hostile_proposal_reaches_the_page_as_text_only(short_tmpdir: Path) -> None:
    async with managed_dashboard(short_tmpdir) as h:
        proposal = await h.manager.propose_spawn("mallory", role=HOSTILE, reason=HOSTILE)
        async with h.dash.client() as client:
            page = (await client.get("/approvals")).text
            detail = (await client.get(f"/partials/approvals/{proposal.id}")).text
        card = page.split(f'id="proposal-{proposal.id}"', 1)[1].split("</article>", 1)[0] + detail
        assert "<img" not in card
        assert "<script>" not in card
        assert "\x1b" not in card
        assert "\x07" not in card
        # The message as the manager wrote it, control characters shown as escapes.
        assert "&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;" in card
        assert "\\x1b[2J\\x1b]0;owned\\x07 &amp; &quot;q&quot;" in card
        # The role in the diff, as the agent file holds it (TOML wrote the escapes itself).
        assert "+role = &quot;&lt;img src=x" in card


async def test_verdicts_and_holds_need_the_token_and_the_pages_own_origin(short_tmpdir: Path) -> None:
    async with managed_dashboard(short_tmpdir) as h:
        await h.operator.spawn("alice")
        proposal = await h.manager.propose_spawn("scout")
        port = int(h.dash.host.rpartition(":")[2])
        posts: dict[str, tuple[str, dict[str, str]]] = {
            "approve": (f"/api/approvals/{proposal.id}/approve", {}),
            "deny": (f"/api/approvals/{proposal.id}/deny", {"reason": "forged"}),
            "suspend": ("/api/agents/alice/suspend", {}),
        }
        async with h.dash.client(bearer=False) as anonymous:
            for why, (path, form) in posts.items():
                assert (await anonymous.post(path, data=form)).status_code == 401, why
            for path in ("/approvals", "/history", "/api/approvals", "/api/history"):
                assert (await anonymous.get(path)).status_code == 401, path
        async with h.dash.logged_in() as client:
            token = await csrf_of(client)
            forgeries = {
                "no csrf token": {"Origin": h.dash.origin},
                "other origin": {"Origin": f"http://127.0.0.1:{port + 1}", "X-Hyperhive-CSRF": token},
                "cross-site": {"Sec-Fetch-Site": "cross-site", "X-Hyperhive-CSRF": token},
            }
            for why, (path, form) in posts.items():
                for forgery, headers in forgeries.items():
                    answer = await client.post(path, data=form, headers=headers)
                    assert answer.status_code == 403, (why, forgery)
        [pending] = await h.operator.approvals()
        assert (pending.id, pending.state) == (proposal.id, ProposalState.PROPOSED)
        assert (await h.operator.status("alice")).sync == SyncState.READY


async def test_suspend_and_resume_from_the_agents_view(short_tmpdir: Path) -> None:
    async with (
        running_dashboard(short_tmpdir, agent_command=IDLE_AGENT) as dash,
        open_hive_client(dash.config.host_socket) as operator,
    ):
        alice = await operator.spawn("alice")
        async with dash.client() as client:
            row = (await client.get("/partials/agents")).text
            assert 'data-sync="Ready"' in row
            assert 'hx-post="/api/agents/alice/suspend"' in row
            suspended = await client.post("/api/agents/alice/suspend")
            assert suspended.status_code == 200, suspended.text
            assert suspended.json()["result"]["sync"] == "Suspended"
            row = (await client.get("/partials/agents")).text
            assert 'data-sync="Suspended"' in row
            assert 'hx-post="/api/agents/alice/resume"' in row
            assert 'hx-post="/api/agents/alice/suspend"' not in row
            resumed = await client.post("/api/agents/alice/resume", headers={"HX-Request": "true"})
            assert resumed.status_code == 200, resumed.text
            assert "alice resumed" in resumed.text
            ghost = await client.post("/api/agents/ghost/suspend")
        status = await operator.status("alice")
        assert (status.sync, status.pid) == (SyncState.READY, alice.pid)
        assert ghost.status_code == 409


async def test_the_history_shows_mains_commits_with_who_what_and_the_proposal_and_each_diff(
    short_tmpdir: Path,
) -> None:
    async with managed_dashboard(short_tmpdir) as h:
        await h.operator.spawn("alice", role="write")
        proposal = await h.manager.propose_spawn("bob", role="review", reason="alice needs a reviewer")
        verdict = await h.operator.approve(proposal.id)
        async with h.dash.client() as client:
            page = (await client.get("/history")).text
            listed = (await client.get("/api/history")).json()
            merge = verdict.proposal.merged_rev
            assert merge is not None
            opened = (await client.get(f"/partials/commit/{merge}")).text
            answers = {
                "short sha": await client.get(f"/api/history/{merge[:12]}"),
                "unknown": await client.get(f"/api/history/{'0' * 40}"),
                "page 0": await client.get("/api/history", params={"page": "0"}),
            }
            beyond = (await client.get("/api/history", params={"page": "9"})).json()
        subjects = [(c["author"], c["subject"], c["trailers"].get("Proposal-Id")) for c in listed["commits"]]
        assert subjects == [
            ("operator", f"approve proposal {proposal.id}: spawn bob", str(proposal.id)),
            ("operator", "spawn alice", None),
            ("operator", "spawn the manager", None),
            ("hyperhive", "a new hive", None),
        ]
        assert listed["total"] == 4
        assert listed["commits"][0]["rev"] == merge
        assert f'id="c-{merge}" data-rev="{merge}" data-proposal="{proposal.id}"' in page
        assert f'<span class="chip" data-key="Proposal-Id">Proposal-Id: {proposal.id}</span>' in page
        assert 'href="/history" aria-current="page"' in page
        assert '<div class="dim">merged from hm1nd</div>' in page  # who proposed what the operator approved
        # The merge's diff is what it brought to main: bob's file.
        assert "+++ b/agents/bob.toml" in opened
        assert '<span class="add">+role = &quot;review&quot;</span>' in opened
        assert "alice.toml" not in opened
        assert answers["short sha"].status_code == 400
        assert "40 hex digits" in answers["short sha"].json()["error"]
        assert answers["unknown"].status_code == 404
        assert answers["page 0"].status_code == 400
        assert (beyond["total"], beyond["commits"]) == (4, [])
