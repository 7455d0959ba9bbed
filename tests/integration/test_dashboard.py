"""The dispatch dashboard in a real headless browser (Debian's chromium driven by playwright-core).

The API runs in this process (uvicorn in a thread, its own SQLite case store, shared with a case-stage
worker that turns its Open311 reports into cases); ``tests/browser/dashboard.mjs`` signs in with the
dispatcher token, waits for the live stream, creates a case through the API (an Open311 report) and
expects it to arrive on the open page, opens it, dispatches it, checks the case changed, and saves a
screenshot to ``artifacts/dashboard.png``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridsentinel.core.device_health import BUCKET_S, HealthReport
from gridsentinel.core.devices import Registry
from gridsentinel.settings import REPO_ROOT

from ..conftest import api_token
from .conftest import Namespace

pytestmark = pytest.mark.integration
BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api_url(ns: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import uvicorn

    from gridsentinel.api.app import create_app

    monkeypatch.setenv("GS_DATABASE_URL", f"sqlite:///{tmp_path / 'cases.db'}")
    (ns.config_dir / "receivers.yaml").write_text('version: test\nmqtt: {enabled: false}\nreceivers: []\n')
    ns.create_topics(f"{ns.prefix}gs.detections", f"{ns.prefix}gs.case-events")  # before the API subscribes
    ns.spawn("cases", "worker", "--app-id", ns.app_id, "--stages", "cases", "--loglevel", "warning")
    app = create_app(ns.settings.with_(run_dir=tmp_path),
                     consume_kafka=True, produce_detections=True, follow_devices=True)
    # what a gateway reports of drain-001 (gs.device-health): the health panel shows it online
    now = time.time()
    report = HealthReport(device_id="drain-001", gateway="gw-browser", at=now, since=now - 60, last_seen=now - 5,
                          messages=12, vitals={"battery": 3.61}, vitals_at=now - 5,
                          message_buckets={int((now - 5) // BUCKET_S): 12})
    producer = ns.producer()
    producer.produce(f"{ns.prefix}gs.device-health", key=b"drain-001", value=report.encode())
    producer.flush(10)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the API did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


@pytest.fixture
def dispatcher(api_url: str, tmp_path: Path) -> str:
    """A dispatcher's token, made in the API's case database while it runs (none ships)."""
    return api_token(f"sqlite:///{tmp_path / 'cases.db'}", "dispatcher")


def test_dashboard_live_update_and_dispatch(api_url: str, dispatcher: str) -> None:
    if not Path(CHROMIUM).exists() or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("needs Debian's chromium and `npm ci` in tests/browser (scripts/setup.sh installs both)")
    shot = REPO_ROOT / "artifacts" / "dashboard.png"
    shot.parent.mkdir(exist_ok=True)
    done = subprocess.run(["node", "dashboard.mjs", api_url, dispatcher, str(shot)], cwd=BROWSER_DIR,
                          capture_output=True, text=True, timeout=180, env={"GS_CHROMIUM": CHROMIUM,
                                                                            "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["cells"] == 18                      # the demo district, drawn from the grid GeoJSON
    assert seen["liveArrived"]                      # the new case reached the open page over SSE
    assert "1" in seen["cellCount"]                 # its cell now shows one open case
    assert seen["statusAfter"] == "dispatched"      # the dispatcher's click changed the case
    assert "dispatch" in seen["logActions"]
    assert seen["healthRows"] == len(Registry.load(REPO_ROOT / "config").devices)  # one row per device
    assert seen["healthHead"] == "last seen (Asia/Shanghai)"
    assert seen["healthDrain"][1] == "online" and seen["healthDrain"][5] == "3.61 V"
    assert seen["pageErrors"] == []
    assert shot.stat().st_size > 10_000
