"""A real local HTTP receiver (http.server on 127.0.0.1, port 0) that answers a scripted list of statuses
and records every request it got."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gridsentinel.cases.events import CaseEvent


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answered in order; 200 once exhausted
    received: list[Received] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)
    delays: list[float] = field(default_factory=list)  # seconds before answering, in order; none once exhausted


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = state.statuses.pop(0) if state.statuses else 200
                delay = state.delays.pop(0) if state.delays else 0.0
            if delay:
                time.sleep(delay)
            self.send_response(status)
            for k, v in state.extra_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/gs"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def case_event(event_id: str = "c1:1", **overrides: object) -> CaseEvent:
    base: dict[str, object] = {
        "event_id": event_id,
        "case_id": event_id.split(":")[0],
        "type": "open",
        "at": 1749434400.0,
        "actor": "system:dedup",
        "grid_code": "320582004001001",
        "category_key": "event:L005",
        "status": "open",
        "severity": "critical",
        "notify": True,
        "case": {
            "opened_at": 1749434400.0,
            "lat": 31.8722,
            "lon": 120.5505,
            "title": "smoke over block 3",
            "sources": {"camera": 1},
            "department": "fire_rescue",
            "escalation_level": 0,
        },
    }
    base.update(overrides)
    return CaseEvent(**base)  # type: ignore[arg-type]
