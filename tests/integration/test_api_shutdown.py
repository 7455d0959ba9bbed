"""`gridsentinel api` stops on SIGTERM while an SSE client is connected, and the client's stream ends."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading

import httpx
import pytest

from gridsentinel.api.auth import add_token

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_stops_the_api_with_an_sse_client_connected(ns: Namespace,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = ns.workdir / "tokens.yaml"
    token = add_token(tokens, "t-viewer", "viewer")
    monkeypatch.setenv("GS_API_TOKENS", str(tokens))
    monkeypatch.setenv("GS_DATABASE_URL", f"sqlite:///{ns.workdir / 'cases.db'}")
    port = _free_port()
    api = ns.spawn("api", "api", "--port", str(port))
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 60, "the API to answer /healthz", ns=ns, on_timeout=lambda: ns.log("api"))
    lines: list[str] = []
    outcome: list[str] = []
    connected = threading.Event()

    def read() -> None:
        try:
            with httpx.stream("GET", f"{base}/api/v1/cases/stream",
                              headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx.Timeout(5, read=None)) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    lines.append(line)
                    connected.set()
            outcome.append("ended")
        except Exception as exc:  # the outcome is checked in the test's thread
            outcome.append(f"{type(exc).__name__}: {exc}")
            connected.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert connected.wait(30), "the SSE stream sent nothing"
    assert lines[0] == "retry: 3000" and not outcome, (lines, outcome)

    api.send_signal(signal.SIGTERM)
    try:
        api.wait(15)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the API ignored SIGTERM with an SSE client connected\n{ns.log('api')}") from None
    reader.join(15)
    assert outcome == ["ended"], (outcome, ns.log("api"))
