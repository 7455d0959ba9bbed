"""The worker's stages by their CLI names, and how they are wired: the only module that imports them all.

Each name maps to a factory that builds the stage object :func:`gridsentinel.worker.app.create_app` takes.
The wiring is explicit here: live config gets the detection stage's engine (the one it reconfigures) and
the appliers of the other config kinds (the live catalogue, the frames processor, the alert delivery),
the alerts stage gets the alert delivery and runs beside the case stage unless GS_CASES_ALERTS=separate
leaves it to workers of its own (alerts sits above cases, so cases cannot build it itself), and the
detection and frames stages get the case catalogue's ``category_of`` (config/categories.yaml alone owns
kind -> category; detectors sit below cases and cannot load it themselves).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from gridsentinel.alerts.delivery.config import ReceiversFile
from gridsentinel.alerts.delivery.service import AlertDelivery
from gridsentinel.alerts.stage import AlertsStage
from gridsentinel.cases.categories import LiveCatalog, load_catalog
from gridsentinel.cases.stage import CaseStage
from gridsentinel.core.device_follow import RegistryFollower, UnknownResolver
from gridsentinel.core.devices import Registry
from gridsentinel.core.records import DeadLetter
from gridsentinel.core.topics import Topics
from gridsentinel.detectors.frames_stage import FramesStage
from gridsentinel.detectors.stage import DetectionStage
from gridsentinel.engineering.live_config import LiveConfigStage
from gridsentinel.engineering.shadow import ShadowStage
from gridsentinel.ingest.stage import IngestStage
from gridsentinel.liveconfig.appliers import worker_appliers
from gridsentinel.settings import Settings
from gridsentinel.streams.context import Stage, WorkerOptions


class Wiring:
    """What the factories share: settings, options, the stage names asked for, and the detection stage
    (built once, when the first factory needs it)."""

    def __init__(self, settings: Settings, options: WorkerOptions, names: Sequence[str], *,
                 follow_registry: bool = False, registry_wait_s: float = 30.0) -> None:
        self.settings = settings
        self.follow_registry = follow_registry
        self.registry_wait_s = registry_wait_s
        self.options = options
        self.names = tuple(names)
        self._detection: DetectionStage | None = None
        self._catalog: LiveCatalog | None = None
        self.frames: FramesStage | None = None
        self.delivery: AlertDelivery | None = None
        self.receivers: ReceiversFile | None = None  # a live receivers version that came before the delivery
        self._registry: Registry | None = None
        self.follower: RegistryFollower | None = None

    def catalog(self) -> LiveCatalog:
        """config/categories.yaml (with routing and calendar), loaded once and replaced by live config:
        what labels detections and what the case stage decides with."""
        if self._catalog is None:
            self._catalog = LiveCatalog(load_catalog(self.settings.config_dir))
        return self._catalog

    def make_frames(self) -> FramesStage:
        self.frames = FramesStage(self.catalog().category_of, self.registry())
        return self.frames

    def make_delivery(self, dead_letter: Callable[[DeadLetter], Awaitable[None]]) -> AlertDelivery:
        catalog = self.catalog()
        self.delivery = AlertDelivery.from_settings(self.settings, on_dead_letter=dead_letter,
                                                    config=self.receivers, catalog=catalog.current)
        catalog.subscribe(self.delivery.use_catalog)  # category names and time zone of a new catalogue
        return self.delivery

    def live_config(self) -> LiveConfigStage:
        # without a detect stage in this worker a new detector config is only logged
        engine = self.detection().engine if "detect" in self.names else None

        def keep(receivers: ReceiversFile) -> None:
            self.receivers = receivers

        return LiveConfigStage(engine, worker_appliers(
            self.catalog(), frames=lambda: self.frames.processor if self.frames else None,
            delivery=lambda: self.delivery, receivers=keep))
    def alerts(self) -> AlertsStage:
        """The alert delivery's stage. Its consumer group is the same whichever worker runs it (a cases
        worker by default, alerts-only workers with GS_CASES_ALERTS=separate): ``<app-id>-alert-delivery``;
        on partitions it never committed it starts where the Faust groups that delivered before (until
        session 13: the cases workers' ``<app-id>``, alerts-only workers' ``<app-id>-alerts``) got to."""
        base = self.options.app_id.removesuffix("-alerts") if "cases" not in self.names else self.options.app_id
        return AlertsStage(delivery=self.make_delivery, concurrency=self.settings.alerts_concurrency,
                           group_id=f"{base}-alert-delivery", legacy_groups=[base, f"{base}-alerts"])

    def registry(self) -> Registry:
        """config/devices.yaml, then followed live on the registry's feed (gs.devices): one registry for
        every stage of this worker, so the detection and frames stages see a new, moved or retired device
        within a poll. Waits (at most ``registry_wait_s``) until the feed is read, once."""
        if self._registry is None:
            self._registry = Registry.load(self.settings.config_dir)
            if self.follow_registry:
                self.follower = RegistryFollower(self._registry, self.settings.kafka_bootstrap,
                                                 Topics(self.settings.topic_prefix).devices,
                                                 name=f"worker {self.options.app_id} registry").start()
                if self.registry_wait_s > 0:
                    self.follower.wait_caught_up(self.registry_wait_s)
        return self._registry

    def detection(self) -> DetectionStage:
        if self._detection is None:
            self._detection = DetectionStage.from_settings(self.settings, self.catalog().category_of,
                                                           self.registry())
            if self.follower is not None:
                self._detection.resolve_unknown = UnknownResolver(self.follower, wait_s=1.0)
        return self._detection


FACTORIES: dict[str, Callable[[Wiring], Stage]] = {
    "ingest": lambda w: IngestStage(bucket=w.options.influx_bucket),
    "detect": lambda w: w.detection(),
    "cases": lambda w: CaseStage(catalog=w.catalog()),
    "alerts": lambda w: w.alerts(),
    "live-config": lambda w: w.live_config(),
    "shadow": lambda w: ShadowStage(),
    "frames": lambda w: w.make_frames(),
}
STAGES: tuple[str, ...] = tuple(FACTORIES)  # the names `gridsentinel worker --stages` takes


def app_id_for(app_id: str, names: Sequence[str]) -> str:
    """The Faust app id (= Kafka consumer group) of a worker running ``names``: ``<app_id>-alerts`` for a
    worker with the ``alerts`` stage but not ``cases``. Faust shares a group's partitions out over every
    topic its members' agents read; an alerts-only worker in the cases workers' group could be given
    detections partitions, which it has no agent for (they would never be applied). Workers that run the
    same stages share a group, as before.

    >>> app_id_for("gridsentinel", ["alerts"]), app_id_for("gridsentinel", ["alerts", "live-config"])
    ('gridsentinel-alerts', 'gridsentinel-alerts')
    >>> app_id_for("gridsentinel", ["cases"]), app_id_for("gridsentinel", ["cases", "alerts"])
    ('gridsentinel', 'gridsentinel')
    """
    return f"{app_id}-alerts" if "alerts" in names and "cases" not in names else app_id


def build_stages(settings: Settings, options: WorkerOptions, names: Sequence[str], *,
                 follow_registry: bool = False) -> list[Stage]:
    """The stage objects for ``names``, in that order; ``ValueError`` on a name that is no stage.
    ``follow_registry``: the stages' registry follows gs.devices (what a running worker does)."""
    for name in names:
        if name not in FACTORIES:
            raise ValueError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")
    wiring = Wiring(settings, options, names, follow_registry=follow_registry)
    stages = [FACTORIES[name](wiring) for name in names]
    if "cases" in names and "alerts" not in names and settings.cases_alerts == "in-worker":
        stages.append(wiring.alerts())  # the cases worker delivers its alerts itself (the default)
    return stages
