"""Dedup: turn a detection into a change of exactly one case (docs/cases.md, "Dedup rules").

1. An active case with the same cell and category takes the detection as evidence.
2. Otherwise an active case of the category within the merge radius (neighbour rings) takes it.
3. Otherwise a case of the category closed within the reopen window (same radius) is reopened.
   A detection observed *before* that case closed is late evidence and attaches without reopening.
4. Otherwise a new case opens.

:func:`decide` is the pure rule; :func:`apply_detection` runs it against a store inside one transaction
(the case change, the applied detection id and the outbox's case events commit together) and retries
when a concurrent writer wins. A detection id already applied is a no-op, so replays are harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gridsentinel.cases.calendar import deadline
from gridsentinel.cases.case import Case, CaseChange, LogEntry, apply_action, chain, log
from gridsentinel.cases.categories import Catalog, Resolved
from gridsentinel.cases.events import CaseEvent, events_for
from gridsentinel.cases.gridcode import Adjacency, center_for, parse_grid_code, ring_distances
from gridsentinel.cases.incidents import IncidentFamilies, link_cases
from gridsentinel.cases.retry import CONFLICT_RETRY, ConflictRetry
from gridsentinel.cases.store_protocol import CaseStore, CaseTx
from gridsentinel.core.records import SEVERITIES, Detection

# What dedup did with a detection (not to be confused with a detector's ``Outcome``, its score and findings).
DedupOutcome = Literal["opened", "attached", "merged", "reopened", "late"]
DEDUP_ACTOR = "system:dedup"
# Case ids derive from the detection that opened the case, so a replayed history yields the same ids.
_CASE_NS = uuid.UUID("0b9d3f3e-5a7c-4c55-9f1e-3f6d2f7a9c01")


def case_id_for(detection_id: str) -> str:
    """The id of a case opened by ``detection_id`` (deterministic)."""
    return str(uuid.uuid5(_CASE_NS, detection_id))


@dataclass(frozen=True, slots=True)
class Decision:
    change: CaseChange
    outcome: DedupOutcome
    expected_version: int | None  # None: a new case


def _pick(cases: Sequence[Case], dist: dict[str, int]) -> Case:
    # Nearest cell first, then the oldest case, then the id: deterministic whatever the store's order.
    return min(cases, key=lambda c: (dist.get(c.grid_code, 1 << 30), c.opened_at, c.case_id))


def attach(case: Case, detection: Detection, severity: str, *, now: float, catalog: Catalog,
           rule: int, actor: str = DEDUP_ACTOR) -> CaseChange:
    """Add ``detection`` as evidence; raise the severity (and tighten the due time) if it is higher.

    The headline follows the case's current state: an active case takes the message of a detection at
    least as severe as the case and not older than its latest one ("drain overflowing" replaces "60 %
    full, overflows in ~16 min"); the title stays the first detection's.

    A false alarm requested and waiting for its second user (four eyes) counts the evidence observed after
    the request (``evidence_since``, ``last_evidence_at``): whoever confirms sees that the machines still
    find the problem. The request stays: a faulty sensor that keeps firing must still be closable.
    """
    sources = dict(case.sources)
    sources[detection.source] = sources.get(detection.source, 0) + 1
    current = (case.is_active and bool(detection.message) and detection.observed_at >= case.last_seen_at
               and SEVERITIES.index(severity) >= SEVERITIES.index(case.severity))
    change = log(
        case, at=now, actor=actor, action="evidence",
        data={"detection_id": detection.detection_id, "source": detection.source, "kind": detection.kind,
              "grid_code": detection.grid_code, "severity": severity, "rule": rule,
              "observed_at": detection.observed_at},
        detection_count=case.detection_count + 1, sources=sources,
        kinds=tuple(sorted({*case.kinds, detection.kind})),
        first_seen_at=min(case.first_seen_at, detection.observed_at),
        last_seen_at=max(case.last_seen_at, detection.observed_at),
        headline=detection.message if current else case.headline,
        headlines=dict(detection.messages) if current else case.headlines,
        **_pending_with(case, detection),
    )
    # Late evidence for a closed case is kept, but does not re-alert anyone.
    if case.is_active and SEVERITIES.index(severity) > SEVERITIES.index(case.severity):
        updates: dict[str, Any] = {"severity": severity}
        if case.dispatched_at is not None and case.due_at is not None:
            limit = catalog.policy(case.category_key).handle_limits.for_severity(severity)
            updates["due_at"] = min(case.due_at, deadline(case.dispatched_at, limit, catalog.calendar))
        raised = log(change.case, at=now, actor=actor, action="raise_severity",
                     data={"from": case.severity, "to": severity, "detection_id": detection.detection_id},
                     **updates)
        change = chain(change, raised)
    return change


def _pending_with(case: Case, detection: Detection) -> dict[str, Any]:
    """``pending_action`` with ``detection`` counted when it was observed after the request was made."""
    pending = case.pending_action
    if pending is None or detection.observed_at <= float(pending.get("at", 0.0)):
        return {}
    return {"pending_action": {**pending, "evidence_since": int(pending.get("evidence_since", 0)) + 1,
                               "last_evidence_at": max(detection.observed_at,
                                                       float(pending.get("last_evidence_at", 0.0)))}}


def open_case(detection: Detection, resolved: Resolved, *, now: float, catalog: Catalog,
              actor: str = DEDUP_ACTOR) -> CaseChange:
    """A new case for ``detection`` (rule 4)."""
    policy = resolved.policy
    spec = policy.spec
    home = center_for(detection.grid_code, catalog.routing.start_level).id
    case_id = case_id_for(detection.detection_id)
    # The case as it is after its first log entry, and that entry, made directly: what ``log`` then two
    # ``dataclasses.replace`` gave (``from_status`` None: there was no case), in half the time; every
    # detection of a storm opens one (test_open_case_is_the_logged_change_it_replaces).
    case = Case(
        case_id=case_id, grid_code=detection.grid_code,
        category_type=spec.type, category_code=spec.code, category_standard=spec.standard,
        status="open", severity=resolved.severity, opened_at=now, updated_at=now,
        first_seen_at=detection.observed_at, last_seen_at=detection.observed_at,
        detection_count=1, sources={detection.source: 1}, kinds=(detection.kind,),
        title=detection.message or spec.name, lat=detection.lat, lon=detection.lon,
        department=catalog.department_for(spec.key, detection.grid_code),
        center=home, home_center=home, headline=detection.message or spec.name,
        headlines=dict(detection.messages) if detection.message else {"zh-CN": spec.name_zh},
        due_at=deadline(now, policy.dispatch_limit, catalog.calendar), log_count=1,
    )
    entry = LogEntry(case_id=case_id, seq=1, at=now, actor=actor, action="open", from_status=None,
                     to_status="open",
                     data={"detection_id": detection.detection_id, "source": detection.source,
                           "kind": detection.kind, "severity": resolved.severity, "rule": 4,
                           "observed_at": detection.observed_at})
    return CaseChange(case, (entry,), created=True)


def decide(detection: Detection, resolved: Resolved, active: Sequence[Case], closed: Sequence[Case],
           dist: dict[str, int], *, now: float, catalog: Catalog) -> Decision:
    """Apply the four dedup rules. ``active``/``closed`` are the store's candidates within ``dist``
    (cell → ring distance from the detection's cell)."""
    key = resolved.policy.key
    active = [c for c in active if c.category_key == key and c.grid_code in dist and c.is_active]
    same_cell = [c for c in active if c.grid_code == detection.grid_code]
    if same_cell:
        case = _pick(same_cell, dist)
        return Decision(attach(case, detection, resolved.severity, now=now, catalog=catalog, rule=1),
                        "attached", case.version)
    if active:
        case = _pick(active, dist)
        return Decision(attach(case, detection, resolved.severity, now=now, catalog=catalog, rule=2),
                        "merged", case.version)
    window = resolved.policy.reopen_window_hours * 3600
    candidates = [c for c in closed if c.category_key == key and c.grid_code in dist
                  and c.closed_at is not None and c.closing_reason != "duplicate"
                  and c.closed_at >= detection.observed_at - window] if window > 0 else []
    late = [c for c in candidates if c.closed_at is not None and c.closed_at >= detection.observed_at]
    if late:
        case = _pick(late, dist)
        return Decision(attach(case, detection, resolved.severity, now=now, catalog=catalog, rule=3),
                        "late", case.version)
    if candidates:
        # The most recently closed case nearest to the detection.
        case = min(candidates, key=lambda c: (-(c.closed_at or 0.0), dist[c.grid_code], c.case_id))
        home = center_for(case.grid_code, catalog.routing.start_level).id
        reopened = apply_action(
            case, "reopen", actor=DEDUP_ACTOR, at=now,
            note=f"detection {detection.detection_id} within the reopen window",
            due_at=deadline(now, resolved.policy.dispatch_limit, catalog.calendar),
            extra={"severity": resolved.severity, "escalation_level": 0, "center": home, "home_center": home},
        )
        change = chain(reopened, attach(reopened.case, detection, resolved.severity, now=now,
                                        catalog=catalog, rule=3))
        return Decision(change, "reopened", case.version)
    return Decision(open_case(detection, resolved, now=now, catalog=catalog), "opened", None)


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a detection needs before it meets the store: its category, its cells and reopen window."""

    detection: Detection
    resolved: Resolved
    dist: dict[str, int]  # cell -> ring distance from the detection's cell
    window_s: float  # rule 3's reopen window (0: never reopen)


def prepare(detection: Detection, catalog: Catalog, adjacency: Adjacency) -> Prepared:
    """Resolve ``detection``'s category and merge radius; raises ``UnknownCategory``/``GridCodeError``."""
    parse_grid_code(detection.grid_code)
    resolved = catalog.resolve(detection)
    dist = ring_distances(detection.grid_code, resolved.policy.merge_rings, adjacency)
    return Prepared(detection, resolved, dist, resolved.policy.reopen_window_hours * 3600)


async def apply_prepared(tx: CaseTx, prep: Prepared, *, now: float, catalog: Catalog) -> list[CaseEvent]:
    """Run the dedup rules for one prepared detection inside ``tx``: the one sequence of reads and writes
    shared by :func:`apply_detection` and the batch path (:mod:`gridsentinel.cases.batch`)."""
    detection, resolved, dist = prep.detection, prep.resolved, prep.dist
    if await tx.is_applied(detection.detection_id):
        return []
    active = await tx.active_cases(resolved.policy.key, list(dist))
    closed: list[Case] = []
    if prep.window_s > 0 and not active:
        closed = await tx.closed_cases(resolved.policy.key, list(dist), detection.observed_at - prep.window_s)
    decision = decide(detection, resolved, active, closed, dist, now=now, catalog=catalog)
    saved = await tx.save(decision.change, decision.expected_version)
    await tx.record_detection(detection, saved.case_id, decision.outcome, now)
    events = events_for(CaseChange(saved, decision.change.entries, decision.change.created), catalog.alert_policy)
    # Same transaction: a crash after the commit cannot lose the events (outbox).
    await tx.add_events(events, now)
    return events


async def apply_detection(detection: Detection, store: CaseStore, catalog: Catalog, adjacency: Adjacency,
                          *, now: float, retry: ConflictRetry = CONFLICT_RETRY,
                          families: IncidentFamilies | None = None) -> list[CaseEvent]:
    """Apply one detection to the case store; return the case events to publish (empty for a replay).

    Raises :class:`~gridsentinel.cases.categories.UnknownCategory` or
    :class:`~gridsentinel.cases.gridcode.GridCodeError` for a detection that cannot become a case (dead-letter
    it), and :class:`StoreConflict` if concurrent writers won every attempt ``retry`` allows.
    For many detections at once, :func:`gridsentinel.cases.batch.apply_detections` gives the same
    result in one transaction. With ``families`` the case joins its incident in the same transaction
    (:func:`~gridsentinel.cases.incidents.link_cases`).
    """
    prep = prepare(detection, catalog, adjacency)

    async def attempt() -> list[CaseEvent]:
        async with store.transaction() as tx:
            events = await apply_prepared(tx, prep, now=now, catalog=catalog)
            if families and events:
                case = await tx.get_case(events[0].case_id)
                if case is not None:
                    await link_cases(tx, [case], families, adjacency, now=now)
            return events

    return await retry.run(attempt, f"detection {detection.detection_id}")
