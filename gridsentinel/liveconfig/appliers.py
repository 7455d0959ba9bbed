"""What applies each config kind in a running process (the worker's ``live-config`` stage, the API).

Every applier builds the new object completely first (a :class:`Catalog`, a de-identifier, resolved
webhook secrets) and only then swaps the one reference the process reads, so a version that fails to
build (``ConfigError``) is rejected and the running one stays.

>>> from gridsentinel.cases.categories import load_catalog
>>> from gridsentinel.settings import REPO_ROOT
>>> live = LiveCatalog(load_catalog(REPO_ROOT / "config"))
>>> appliers = worker_appliers(live, frames=lambda: None, delivery=lambda: None)
>>> sorted(appliers)
['calendar', 'cameras', 'categories', 'receivers', 'routing']
>>> cal, _ = appliers["calendar"].kind.validate("official: none\\n", "cal", no_siblings)
>>> appliers["calendar"].apply(cal, "v2"), live.current.calendar.official
('new cases and dispatches count due times on it; open cases keep theirs', 'none')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gridsentinel.alerts.delivery.config import ReceiversFile
from gridsentinel.cases.calendar import WorkCalendar, coverage_warning
from gridsentinel.cases.categories import Catalog, CategoriesFile, LiveCatalog, RoutingFile
from gridsentinel.engineering.live_config import KindApplier, LiveConfig
from gridsentinel.liveconfig.kinds import KINDS, no_siblings
from gridsentinel.settings import Settings

if TYPE_CHECKING:  # the API imports this module: no OpenCV / Faust / httpx for it
    from gridsentinel.alerts.delivery.service import AlertDelivery
    from gridsentinel.detectors.camera.config import CamerasFile
    from gridsentinel.detectors.frames_stage import FrameProcessor

__all__ = ["CATALOG_KINDS", "catalog_appliers", "follow_catalog", "no_siblings", "worker_appliers"]
log = logging.getLogger(__name__)
CATALOG_KINDS = ("categories", "routing", "calendar")


def catalog_appliers(live: LiveCatalog) -> dict[str, KindApplier]:
    """categories / routing / calendar: a new :class:`Catalog` with the new part, swapped in whole."""
    def categories(obj: Any, _label: str) -> str:
        assert isinstance(obj, CategoriesFile)
        new = live.replace(categories=obj)
        return (f"{len(new.policies)} categories; new detections and cases use them, open cases keep their "
                "due times")

    def routing(obj: Any, _label: str) -> str:
        assert isinstance(obj, RoutingFile)
        live.replace(routing=obj)
        return "new cases are routed by it, the next events notified by its alert policy"

    def calendar(obj: Any, _label: str) -> str:
        assert isinstance(obj, WorkCalendar)
        live.replace(calendar=obj)
        warning = coverage_warning(time.time(), obj)
        if warning:
            log.warning("%s", warning)
        return "new cases and dispatches count due times on it; open cases keep theirs"

    fns = {"categories": categories, "routing": routing, "calendar": calendar}
    return {name: KindApplier(KINDS[name], fn) for name, fn in fns.items()}


def worker_appliers(live: LiveCatalog, *, frames: Callable[[], FrameProcessor | None],
                    delivery: Callable[[], AlertDelivery | None],
                    receivers: Callable[[ReceiversFile], None] | None = None) -> dict[str, KindApplier]:
    """Every kind but detectors, for a worker: the catalogue ``live`` (read by the case stage and, through
    ``category_of``, the detect and frames stages), the frames stage's processor and the alert delivery
    (``None`` while this worker has none; ``receivers`` then keeps the config for when it is built)."""
    def cameras(obj: CamerasFile, _label: str) -> str:
        proc = frames()
        if proc is None:
            return "no frames stage in this worker"
        from gridsentinel.detectors.camera.privacy import Deidentifier

        deid = Deidentifier(obj.privacy) if obj.privacy != proc.cameras.privacy else None  # before the swap
        changed = proc.reconfigure(obj, deid)
        return (f"{len(changed)} camera(s) changed ({', '.join(sorted(changed)) or 'none'}): new stacks on "
                "their next frame; the others keep their state")

    def receivers_(obj: Any, _label: str) -> str:
        assert isinstance(obj, ReceiversFile)
        service = delivery()
        if service is None:
            for r in obj.receivers:
                r.resolve_secret()  # a missing secret rejects it now, not when the delivery starts
            if receivers is not None:
                receivers(obj)
            return "kept for the alert delivery (not started in this worker yet)"
        notes = service.reconfigure(obj)  # secrets resolved before the swap: ConfigError rejects it
        return "; ".join([f"{len(obj.receivers)} receiver(s) from the next alert", *notes])

    appliers = catalog_appliers(live)
    appliers["cameras"] = KindApplier(KINDS["cameras"], cameras)
    appliers["receivers"] = KindApplier(KINDS["receivers"], receivers_)
    return appliers


async def follow_catalog(settings: Settings, catalog: Catalog, on_change: Callable[[Catalog], None]) -> None:
    """For processes outside the worker that hold a catalogue (the API: due times of transitions, Open311
    services, dashboard names): follow ``gs.config`` and call ``on_change(new catalogue)`` for each live
    categories / routing / calendar version that builds; the others are rejected and logged."""
    from gridsentinel.engineering.follow import follow_config

    live = LiveCatalog(catalog)
    live.subscribe(on_change)
    handler = LiveConfig(None, catalog_appliers(live))

    def handle(key: str, value: dict[str, Any]) -> None:
        if key in handler.appliers:
            handler.handle_kind(key, value)

    await follow_config(settings, handle)
