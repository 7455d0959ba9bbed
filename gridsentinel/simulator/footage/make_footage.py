"""Rebuild the simulator's camera footage from OpenCV's sample clip ``vtest.avi``.

Run: ``python gridsentinel/simulator/footage/make_footage.py DIR`` where DIR holds ``vtest.avi``
(Debian package ``opencv-doc``, ``examples/data/``; see ATTRIBUTION.md). Frames 0-159, every 4th
(2.5 frames/s, 16 s), resized to 320x240, JPEG quality 70.
"""

import sys
from pathlib import Path

import cv2


def main(folder: str) -> None:
    src = Path(folder) / "vtest.avi"
    out = Path(__file__).resolve().parent / "walkway"
    out.mkdir(exist_ok=True)
    cap = cv2.VideoCapture(str(src))
    for i in range(160):
        ok, frame = cap.read()
        if not ok:
            break
        if i % 4 == 0:
            small = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(out / f"{i:04d}.jpg"), small, [cv2.IMWRITE_JPEG_QUALITY, 70])
    print(f"wrote {len(list(out.glob('*.jpg')))} frames to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
