"""`gridsentinel bench cases`: the goals are judged on the run's own figures, and the report shows them."""

from typing import Any

import pytest

from gridsentinel.bench.cases import _goals, _render

pytestmark = pytest.mark.unit


def _result(stage: float, raw: float, p99: float, p50_1: float) -> dict[str, Any]:
    run = {"workers": 1, "detections_per_s": stage, "seconds": 1.0, "webhooks_received": 0,
           "processes": {"worker1": {"cpu_cores": 0.9, "peak_rss_mb": 180.0, "rss_mb_at_quarter": 170.0,
                                     "rss_mb_at_end": 175.0}}}
    return {"detections": 100, "per_case": 1, "concurrency": 4, "batch_size": 200, "cores": 2,
            "store": {"postgresql": {"detections_per_s": 900.0, "seconds": 1.0}},
            "raw": {"cases": 100, "rows": 400, "rows_per_case": 4.0, "detections_per_s": raw, "seconds": 1.0},
            "stage": {"postgresql": run}, "scaling": [run],
            "latency": {"baseline": {"rate": 1.0, "sent": 3, "delivered": 3, "p50_ms": p50_1, "p99_ms": p50_1,
                                     "max_ms": p50_1},
                        "loaded": {"rate": stage / 2, "sent": 10, "delivered": 10, "p50_ms": p99 / 2,
                                   "p99_ms": p99, "max_ms": p99},
                        "p99_vs_baseline_p50": round(p99 / p50_1, 2)}}


def test_goals_met_and_missed_from_the_runs_own_figures() -> None:
    met = _goals(_result(stage=300.0, raw=1000.0, p99=400.0, p50_1=50.0))
    assert [g["met"] for g in met] == [True, True]
    missed = _goals(_result(stage=200.0, raw=1000.0, p99=600.0, p50_1=50.0))
    assert [(g["value"], g["met"]) for g in missed] == [(0.2, False), (12.0, False)]


def test_phases_not_run_are_not_judged() -> None:
    result = _result(stage=300.0, raw=1000.0, p99=400.0, p50_1=50.0)
    del result["raw"], result["latency"]
    assert _goals(result) == []


def test_report_shows_share_of_raw_limit_scaling_and_memory() -> None:
    result = _result(stage=250.0, raw=1000.0, p99=400.0, p50_1=50.0)
    result["goals"] = _goals(result)
    text = _render(result)
    assert "= 25% of the raw limit" in text
    assert "170.0->175.0 (180.0)" in text
    assert "met     stage (1 worker) / raw PostgreSQL limit" in text


def test_report_shows_the_alerts_workers_cpu_apart_from_the_cases_workers() -> None:
    result = _result(stage=250.0, raw=1000.0, p99=400.0, p50_1=50.0)
    run = result["scaling"][0]
    run["alerts"] = "separate"
    run["processes"]["alerts"] = {"cpu_cores": 0.31, "peak_rss_mb": 120.0, "rss_mb_at_quarter": 110.0,
                                  "rss_mb_at_end": 111.0}
    result["goals"] = _goals(result)
    text = _render(result)
    assert "stage postgresql (Faust worker, alerts separate, 1 alerts worker(s)): 250.0 detections/s" in text
    row = next(line for line in text.splitlines() if line.split()[:2] == ["1", "250.0"])
    assert row.split()[3:5] == ["0.90", "0.31"]  # cores of the cases worker, then the alerts worker's


def test_report_adds_up_the_cpu_of_several_alerts_workers() -> None:
    result = _result(stage=250.0, raw=1000.0, p99=400.0, p50_1=50.0)
    run = result["scaling"][0]
    run["alerts"], run["alerts_workers"] = "separate", 2
    for name, cores in (("alerts", 0.25), ("alerts2", 0.5)):
        run["processes"][name] = {"cpu_cores": cores, "peak_rss_mb": 120.0, "rss_mb_at_quarter": 110.0,
                                  "rss_mb_at_end": 111.0}
    result["goals"] = _goals(result)
    text = _render(result)
    assert "alerts separate, 2 alerts worker(s)" in text
    row = next(line for line in text.splitlines() if line.split()[:2] == ["1", "250.0"])
    assert row.split()[3:5] == ["0.90", "0.75"]


def test_more_alerts_workers_than_partitions_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from gridsentinel.bench.cases import run
    from gridsentinel.cli import build_parser
    from gridsentinel.settings import Settings

    args = build_parser(["bench", "cases"]).parse_args(["bench", "cases", "--alerts-workers", "5"])
    assert run(args, Settings()) == 2
    assert "--alerts-workers must be 1 to 4" in capsys.readouterr().err


def test_report_splits_the_latency_at_the_case() -> None:
    result = _result(stage=250.0, raw=1000.0, p99=400.0, p50_1=50.0)
    result["latency"]["loaded"].update({"to_case_p50_ms": 70.0, "to_case_p99_ms": 150.0,
                                        "case_to_webhook_p50_ms": 120.0, "case_to_webhook_p99_ms": 250.0})
    result["goals"] = _goals(result)
    loaded = next(line for line in _render(result).splitlines() if line.startswith("detection -> webhook at 125/s"))
    assert loaded.endswith("to the case p50 70.0 / p99 150.0 ms, case to webhook p50 120.0 / p99 250.0 ms")


def test_report_shows_the_noise_and_the_p99_of_each_second_and_the_goal_says_it_was_noisy() -> None:
    result = _result(stage=250.0, raw=1000.0, p99=400.0, p50_1=50.0)
    result["latency"]["loaded"].update({"p99_ms_by_second": [90.0, 400.0, 85.5],
                                        "noise": {"burn_s": 1.0, "period_s": 3.0, "cpu_cores": 0.33}})
    result["goals"] = _goals(result)
    assert "neighbour busy 1 s in every 3 s: not the goal's condition" in result["goals"][1]["goal"]
    text = _render(result)
    assert "  meanwhile a neighbour busy 1 s in every 3 s (0.33 core on average)" in text
    assert "  p99 ms of each second's detections: 90 400 85.5" in text


def test_the_receiver_times_each_detection_once_from_requests_split_and_joined_on_one_connection() -> None:
    import json
    import socket

    from gridsentinel.bench.cases import _Receiver

    def request(detection_id: str, at: float) -> bytes:
        body = json.dumps({"type": "open", "at": at, "data": {"detection_id": detection_id}}).encode()
        return (b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)) + body

    receiver = _Receiver()
    try:
        port = int(receiver.url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            first, second, again = request("d1", 100.0), request("d2", 200.0), request("d1", 300.0)
            conn.sendall(first[:20])  # a head in pieces, then the rest with the next request and a repeat
            conn.sendall(first[20:] + second[:-3])
            conn.sendall(second[-3:] + again)
            answers = b""
            while answers.count(b"204") < 3:
                chunk = conn.recv(4096)
                if not chunk:  # the receiver closed the connection: fail on the count below, do not spin
                    break
                answers += chunk
        assert answers.count(b"HTTP/1.1 204 No Content") == 3
        assert sorted(receiver.arrivals) == ["d1", "d2"]
        assert receiver.applied == {"d1": 100.0, "d2": 200.0}  # the first arrival counts
    finally:
        receiver.shutdown()
