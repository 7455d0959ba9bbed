"""Simulated time: a window of event time that ends at "now", played faster than real time.

The gateway accepts event times at most 300 s in the future and at most 7 days old, and the detectors
work on event time. So the simulator plays a window ``[T0, T0 + D]`` whose end coincides with the wall
clock when the run ends: with ``R`` the run's real length, ``T0 = start + R - D``. Event time then never
runs ahead of the wall clock (it starts ``D - R`` behind and catches up at the end), the oldest event is
``D - R`` old (hours, far inside the 7 days), and every case's times are recent.

The clock runs at ``speed`` (simulated seconds per real second), except inside *scenes* (camera
incidents), which run at ``scene_speed`` so that cameras can stream several frames per second.

>>> c = SimClock(duration_s=3600, speed=60, scenes=[(600.0, 660.0)], scene_speed=1, real_start=1000.0)
>>> c.real_length_s            # 3540 s at 60x + 60 s at 1x
119.0
>>> c.window_start, c.event_time(3600) == c.real_at(3600)
(-2481.0, True)
>>> c.real_at(600) - 1000, c.real_at(660) - 1000
(10.0, 70.0)

A window can also be pinned at an explicit event time (``window_start``), so that what it covers (a
night, 22:00 and 06:00) does not depend on when the run starts; it must lie in the past far enough that
its end is not ahead of the wall clock when played, and be recent enough for the gateway:

>>> SimClock(duration_s=3600, speed=60, real_start=1000.0, window_start=-2600.0).event_time(0)
-2600.0
>>> SimClock(duration_s=3600, speed=60, real_start=1000.0, window_start=0.0)
Traceback (most recent call last):
...
ValueError: the window [0, 3600] would run ahead of the wall clock (it ends at 1060 when played)
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

LOCAL = timezone(timedelta(hours=8), "CST")  # the district's local time (Asia/Shanghai has no DST)
MAX_AGE_S = 7 * 86400.0 - 3600.0  # the gateway refuses events older than 7 days (gateway Limits.max_age_s)


class SimClock:
    def __init__(self, duration_s: float, speed: float, scenes: Sequence[tuple[float, float]] = (),
                 scene_speed: float = 1.0, real_start: float = 0.0, window_start: float | None = None) -> None:
        if speed < 1 or scene_speed < 1:
            raise ValueError("speed and scene_speed must be >= 1 (event time must never pass the wall clock)")
        self.duration_s = duration_s
        self.real_start = real_start
        # breakpoints: (offset, real seconds elapsed at that offset)
        cuts = sorted({0.0, duration_s, *(x for s in scenes for x in s if 0 <= x <= duration_s)})
        inside = [any(a <= lo and hi <= b for a, b in scenes) for lo, hi in zip(cuts, cuts[1:], strict=False)]
        self._offsets = [cuts[0]]
        self._real = [0.0]
        self._speeds = []
        for (lo, hi), slow in zip(zip(cuts, cuts[1:], strict=False), inside, strict=True):
            v = scene_speed if slow else speed
            self._speeds.append(v)
            self._offsets.append(hi)
            self._real.append(self._real[-1] + (hi - lo) / v)
        self.real_length_s = self._real[-1]
        self.real_end = real_start + self.real_length_s
        if window_start is None:
            window_start = self.real_end - duration_s
        elif window_start + duration_s > self.real_end:
            raise ValueError(f"the window [{window_start:.0f}, {window_start + duration_s:.0f}] would run "
                             f"ahead of the wall clock (it ends at {self.real_end:.0f} when played)")
        elif real_start - window_start > MAX_AGE_S:
            raise ValueError(f"the window starts {(real_start - window_start) / 86400:.1f} days before it is "
                             f"played: the gateway refuses events older than 7 days")
        self.window_start = window_start

    def event_time(self, offset: float) -> float:
        """The event time (Unix s) of an offset into the window."""
        return self.window_start + offset

    def real_at(self, offset: float) -> float:
        """The wall-clock time at which the offset is played."""
        i = max(0, min(bisect.bisect_right(self._offsets, offset) - 1, len(self._speeds) - 1))
        return self.real_start + self._real[i] + (offset - self._offsets[i]) / self._speeds[i]


def parse_start(text: str, duration_s: float, now: float) -> float:
    """The event time a ``--start`` names: Unix seconds, an ISO 8601 time (local time when it has no zone),
    or ``HH:MM``: the latest such local time whose whole window has passed by ``now``.

    >>> now = datetime(2026, 3, 2, 10, 0, tzinfo=LOCAL).timestamp()    # 10:00
    >>> def show(t: float) -> str:
    ...     return datetime.fromtimestamp(t, LOCAL).strftime("%m-%d %H:%M")
    >>> show(parse_start("21:40", 8.5 * 3600, now)), show(parse_start("01:00", 8.5 * 3600, now))
    ('03-01 21:40', '03-02 01:00')
    >>> show(parse_start("2026-03-01T05:50", 3600, now)), parse_start("1767225600", 3600, now)
    ('03-01 05:50', 1767225600.0)
    """
    text = text.strip()
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if clock:
        hour, minute = int(clock[1]), int(clock[2])
        if hour > 23 or minute > 59:
            raise ValueError(f"--start {text}: not a time of day")
        latest = datetime.fromtimestamp(now - duration_s, LOCAL)
        start = latest.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if start > latest:
            start -= timedelta(days=1)
        return start.timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"--start {text}: expected HH:MM, an ISO 8601 time or Unix seconds") from exc
    return (when if when.tzinfo else when.replace(tzinfo=LOCAL)).timestamp()
