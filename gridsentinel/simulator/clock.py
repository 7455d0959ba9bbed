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
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


class SimClock:
    def __init__(self, duration_s: float, speed: float, scenes: Sequence[tuple[float, float]] = (),
                 scene_speed: float = 1.0, real_start: float = 0.0) -> None:
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
        self.window_start = real_start + self.real_length_s - duration_s

    def event_time(self, offset: float) -> float:
        """The event time (Unix s) of an offset into the window."""
        return self.window_start + offset

    def real_at(self, offset: float) -> float:
        """The wall-clock time at which the offset is played."""
        i = max(0, min(bisect.bisect_right(self._offsets, offset) - 1, len(self._speeds) - 1))
        return self.real_start + self._real[i] + (offset - self._offsets[i]) / self._speeds[i]
