from __future__ import annotations

import pytest

from gridsentinel.detectors.policy import Hysteresis, Level, Policy

pytestmark = pytest.mark.unit


def test_flapping_signal_is_one_incident() -> None:
    p = Policy("demo", [Level("warning", 1.0, 0.9)], cooldown_s=600, flap_limit=3)
    findings = []
    for i in range(100):  # bounces across the threshold every minute for 100 minutes
        findings += p.step(i * 60.0, 1.2 if i % 2 else 0.5, 0.0)
    findings += p.step(100 * 60.0 + 5000, 0.0, 0.0)
    findings += p.step(100 * 60.0 + 6300, 0.0, 0.0)
    assert [f.phase for f in findings] == ["open", "clear"]
    assert findings[-1].evidence["flapping"] is True
    assert findings[0].started_at == findings[-1].started_at == 60.0


def test_flapping_needs_twice_the_quiet_to_clear() -> None:
    p = Policy("demo", [Level("warning", 1.0, 0.9)], cooldown_s=100, flap_limit=2)
    for t, s in [(0, 2), (10, 0), (20, 2), (30, 0), (40, 2), (50, 0)]:
        p.step(t, s, s)
    assert p.flapping
    assert p.step(160, 0, 0) == []        # 110 s quiet: enough normally, not when flapping
    assert [f.phase for f in p.step(260, 0, 0)] == ["clear"]


def test_min_hold_suppresses_short_excursions() -> None:
    h = Hysteresis(enter=10, exit=8, hold_s=5)
    assert not any(h.step(t, 11 if t % 4 == 0 else 7) for t in range(20))


def test_hysteresis_below_direction() -> None:
    h = Hysteresis(enter=2.0, exit=3.0, direction="below")
    assert [h.step(t, x) for t, x in enumerate([4, 1.5, 2.5, 3.5])] == [False, True, True, False]


def test_exit_past_enter_is_rejected() -> None:
    with pytest.raises(ValueError):
        Hysteresis(enter=1.0, exit=2.0)


def test_escalation_keeps_the_incident_start() -> None:
    p = Policy("x", [Level("warning", 1, 0.5), Level("critical", 5, 4)])
    out = [f for t, s in [(0, 2), (1, 6)] for f in p.step(t, s, s)]
    assert [(f.phase, f.severity, f.started_at) for f in out] == [
        ("open", "warning", 0), ("escalate", "critical", 0)]
