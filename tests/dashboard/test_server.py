"""The dashboard's HTTP server on a real manager: the page, JSON, /metrics, and the password."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request

import pytest

import coffea_wq.work_queue as wq
from coffea_wq.dashboard.auth import COOKIE, DashboardAuth
from coffea_wq.dashboard.build import RunView
from coffea_wq.dashboard.server import DashboardServer
from coffea_wq.dashboard.sources import EmbeddedSource
from coffea_wq.dashboard.tracker import RunTracker
from tests.support import LOOPBACK

PASSWORD = b"s3cret-pass\n"


@pytest.fixture
def queue():
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    for n in range(2):
        t = wq.Task(f"echo {n}")
        t.specify_category("analysis")
        q.submit(t)
    try:
        yield q
    finally:
        q.shutdown()


def serve(queue, password: bytes | None) -> DashboardServer:
    view = RunView(password=password is not None)
    view.attach(EmbeddedSource(queue), tracker=None)
    return DashboardServer(view, DashboardAuth(password), LOOPBACK, 0)


def request(server: DashboardServer, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(LOOPBACK, server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def test_without_password_the_page_json_and_metrics_are_served(queue):
    server = serve(queue, None)
    try:
        status, headers, page = request(server, "/")
        assert status == 200 and b"/static/dashboard.js" in page and "text/html" in headers["content-type"]
        assert "default-src 'self'" in headers["content-security-policy"]
        snapshot = json.loads(urllib.request.urlopen(server.url + "api/snapshot", timeout=10).read())
        assert snapshot["tasks"]["waiting"] == 2 and snapshot["tasks"]["submitted"] == 2
        assert snapshot["source"]["manager"] == f"127.0.0.1:{queue.port}"
        assert [c["name"] for c in snapshot["categories"]] == ["analysis"]
        assert snapshot["categories"][0]["waiting"] == 2
        assert snapshot["progress"]["unit"] == "task" and snapshot["progress"]["chunks_total"] == 2
        metrics = urllib.request.urlopen(server.url + "metrics", timeout=10).read().decode()
        assert 'coffea_wq_tasks{state="waiting"} 2.0' in metrics
        assert "coffea_wq_tasks_submitted_total 2.0" in metrics
        assert request(server, "/static/dashboard.js")[0] == 200
    finally:
        server.stop()


def test_with_a_password_no_data_until_the_password_is_given(queue):
    server = serve(queue, PASSWORD)
    try:
        assert request(server, "/")[0] == 200  # the page itself, with its login form, but no data
        status, _, body = request(server, "/api/snapshot")
        assert status == 401 and b"waiting" not in body
        status, headers, _ = request(server, "/metrics")
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        assert json.loads(request(server, "/api/auth")[2]) == {"required": True, "ok": False}

        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert request(server, "/login", "POST", b"password=wrong", form)[0] == 403
        status, headers, _ = request(server, "/login", "POST", b"password=s3cret-pass", form)
        assert status == 200
        cookie = headers["set-cookie"].split(";")[0]
        assert cookie.startswith(COOKIE + "=") and "HttpOnly" in headers["set-cookie"]
        status, _, body = request(server, "/api/snapshot", headers={"Cookie": cookie})
        assert status == 200 and json.loads(body)["tasks"]["waiting"] == 2
        assert request(server, "/api/snapshot", headers={"Cookie": f"{COOKIE}=forged"})[0] == 401

        # Prometheus' scrapers: a bearer token or basic auth carry the password
        assert request(server, "/metrics", headers={"Authorization": "Bearer s3cret-pass"})[0] == 200
        basic = base64.b64encode(b"prometheus:s3cret-pass").decode()
        assert request(server, "/metrics", headers={"Authorization": f"Basic {basic}"})[0] == 200
        assert request(server, "/metrics", headers={"Authorization": "Bearer nope"})[0] == 401

        request(server, "/logout", "POST", headers={"Cookie": cookie})
        assert request(server, "/api/snapshot", headers={"Cookie": cookie})[0] == 401
    finally:
        server.stop()


def test_hostile_requests_are_refused(queue):
    server = serve(queue, PASSWORD)
    try:
        # another site's name pointed at 127.0.0.1 (DNS rebinding) is not served
        assert request(server, "/", headers={"Host": "evil.example:80"})[0] == 421
        for path in ("/static/../server.py", "/static/auth.py", "/static/%2e%2e/server.py", "/etc/passwd"):
            assert request(server, path)[0] == 404, path
        big = b"password=" + b"x" * 10_000
        assert request(server, "/login", "POST", big)[0] == 413
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + "api/snapshot", timeout=10)
        assert info.value.code == 401
    finally:
        server.stop()


def test_a_finished_run_keeps_its_last_snapshot(queue):
    view = RunView()
    view.attach(EmbeddedSource(queue), tracker=None)
    assert view.snapshot().tasks.waiting == 2
    view.finish()
    queue.cancel_by_taskid(1)
    final = view.snapshot()
    assert final.state.value == "finished" and final.tasks.waiting == 2


def test_an_unreadable_manager_still_shows_the_executors_progress():
    from coffea.processor.executor import WorkItem

    from coffea_wq.dashboard.sources import StatusQuerySource
    from coffea_wq.dashboard.tracker import RunTracker
    from tests.support import free_port

    tracker = RunTracker()
    item = WorkItem("tt", "a.root", "Events", 0, 100, b"u")
    tracker.call_started("Processing", "chunk", [item, WorkItem("tt", "a.root", "Events", 100, 200, b"u")])
    tracker.item_processed(item)
    view = RunView()
    view.attach(StatusQuerySource(LOOPBACK, free_port(), timeout=2), tracker)  # nothing listens there
    snapshot = view.snapshot()
    view.close()
    assert snapshot.state.value == "running" and "status cannot be read" in snapshot.error
    assert (snapshot.progress.chunks_done, snapshot.progress.events_total) == (1, 200)


def test_without_a_tracker_an_unreadable_manager_is_unreachable():
    from coffea_wq.dashboard.sources import StatusQuerySource
    from tests.support import free_port

    view = RunView()
    view.attach(StatusQuerySource(LOOPBACK, free_port(), timeout=2), tracker=None)
    snapshot = view.snapshot()
    view.close()
    assert snapshot.state.value == "unreachable" and snapshot.error


def test_what_churn_cost_is_in_the_snapshot_and_metrics(queue):
    """Partials lost with their workers, the chunks redone and the hold bound (docs/reduction.md, 6)."""
    tracker = RunTracker()
    tracker.churn(partials_lost=3, chunks_redone=17, hold_bound="per chunk")
    view = RunView(password=False)
    view.attach(EmbeddedSource(queue), tracker=tracker)
    server = DashboardServer(view, DashboardAuth(None), LOOPBACK, 0)
    try:
        tasks = json.loads(urllib.request.urlopen(server.url + "api/snapshot", timeout=10).read())["tasks"]
        assert (tasks["partials_lost"], tasks["chunks_redone"], tasks["hold_bound"]) == (3, 17, "per chunk")
        metrics = urllib.request.urlopen(server.url + "metrics", timeout=10).read().decode()
        assert "coffea_wq_partials_lost_total 3.0" in metrics
        assert "coffea_wq_chunks_redone_after_loss_total 17.0" in metrics
        script = request(server, "/static/dashboard.js")[2].decode()
        assert '["partials lost", fmt(t.partials_lost)]' in script and '["hold bound", t.hold_bound' in script
    finally:
        server.stop()
