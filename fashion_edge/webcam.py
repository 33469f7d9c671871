"""`fashion-edge webcam`: classify live camera frames, show them, stream them, log them.

One visible loop: read a frame, preprocess(), classify(), draw(), hand the result on.
"""
import collections
import json
import os
import signal
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fashion_edge import camera, preprocess as photo
from fashion_edge.server import Server

NOTHING = "nothing in view"
WINDOW = "fashion-edge"


def preprocess(frame):
    return photo.prepare(frame)


def classify(clf, prepared, recent):
    """The prediction for this frame, its probabilities averaged over the recent frames so the label does not flicker."""
    probs = clf.model.run(prepared.pixels[None, None])[0][0] if prepared.found else None
    recent.append(probs)
    seen = [p for p in recent if p is not None]
    if prepared.found and seen:
        return clf.decide(np.mean(seen, axis=0), prepared)
    return None  # nothing in view


def draw(frame, prediction, fps):
    """The frame with the garment's box, the label, top-3 bars and the frame rate drawn on it."""
    canvas = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    font = cv2.FONT_HERSHEY_SIMPLEX
    known = prediction is not None and prediction.class_id is not None
    if prediction is not None and prediction.box:
        x, y, w, h = prediction.box
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 220, 0) if known else (0, 200, 255), 2)
    title = f"{prediction.label} {prediction.confidence:.0%}" if known else NOTHING
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 34), (0, 0, 0), -1)
    cv2.putText(canvas, title, (8, 24), font, 0.75, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(canvas, f"{fps:5.1f} fps", (canvas.shape[1] - 110, 24), font, 0.6, (200, 200, 200), 1, cv2.LINE_AA)
    if prediction is not None:
        cv2.rectangle(canvas, (0, 34), (300, 40 + 22 * len(prediction.top_k[:3])), (0, 0, 0), -1)
        for i, top in enumerate(prediction.top_k[:3]):
            y = 50 + 22 * i
            cv2.rectangle(canvas, (8, y - 12), (8 + int(120 * top["confidence"]), y + 4), (0, 180, 255), -1)
            cv2.putText(canvas, f"{top['label']} {top['confidence']:.2f}", (134, y), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


class Stages:
    """Time spent per stage of the loop, for --verbose and `fashion-edge bench`."""

    def __init__(self):
        self.total = collections.defaultdict(float)
        self.last = time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.total[name] += now - self.last
        self.last = now

    def report(self, frames):
        return {name: 1000 * t / max(frames, 1) for name, t in self.total.items()}


class FrameRate:
    def __init__(self, window=30):
        self.times = collections.deque(maxlen=window)

    def tick(self):
        self.times.append(time.perf_counter())
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


def can_show_window():
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE)
        return True
    except cv2.error:  # opencv-python-headless has no GUI
        return False


def run(clf, source="0", width=None, height=None, display=True, as_json=False, serve=None, save=None,
        loop=False, max_frames=None, smooth=5, verbose=False, out=sys.stdout, log=sys.stderr):
    """Run the live loop until the source ends, max_frames, q/Esc, Ctrl-C or SIGTERM. Returns a summary dict.

    Raises camera.CameraError when the source cannot be opened or fails for good.
    """
    src = camera.open_source(source, width, height, loop)
    server = writer = None
    shown = display and can_show_window()
    if display and not shown:
        print("no display: running headless" + ("" if serve else
              f"; for a live view in a browser run: fashion-edge webcam --source {source} --serve 8080"), file=log)
    # SIGTERM ends the run the way Ctrl-C does: through the finally below.
    previous = signal.signal(signal.SIGTERM, interrupt)
    recent = collections.deque(maxlen=smooth)
    stages, rate, labels = Stages(), FrameRate(), collections.Counter()
    frames, started, failure = 0, time.perf_counter(), None
    try:
        if serve:
            server = Server(*serve)
            print(f"serving the live view on {server.url}", file=log)
        if save:
            writer = Writer(save, src.fps)
        draws = shown or server or writer
        stages.lap("start")
        while max_frames is None or frames < max_frames:
            item = src.read()
            if item is None:
                break
            index, frame = item
            stages.lap("capture")
            prepared = preprocess(frame)
            stages.lap("preprocess")
            prediction = classify(clf, prepared, recent)
            fps = rate.tick()
            stages.lap("inference")
            labels[prediction.label if prediction and prediction.class_id is not None else NOTHING] += 1
            frames += 1
            result = frame_result(index, time.perf_counter() - started, prediction, fps)
            if as_json:
                print(json.dumps(result), file=out, flush=True)
            if draws:
                canvas = draw(frame, prediction, fps)
                if server:
                    server.broadcast.publish(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes(), result)
                if writer:
                    writer.write(canvas)
                if shown:
                    cv2.imshow(WINDOW, canvas)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
                stages.lap("overlay/encode")
    except KeyboardInterrupt:
        pass
    except camera.CameraError as e:
        failure = e
    finally:
        signal.signal(signal.SIGTERM, previous)
        src.release()
        if server:
            server.close()
        if writer:
            writer.close()
        if shown:
            cv2.destroyAllWindows()
    seconds = time.perf_counter() - started
    summary = {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / max(seconds, 1e-9), 1),
               "labels": dict(labels.most_common()), "stage_ms": stages.report(frames)}
    histogram = ", ".join(f"{k} {v}" for k, v in labels.most_common())
    print(f"{frames} frames in {seconds:.1f} s ({summary['fps']} fps); {histogram or 'no frames'}", file=log)
    if verbose:
        stage_ms = summary["stage_ms"]
        stage_ms.pop("start", None)
        print("per frame: " + ", ".join(f"{k} {v:.2f} ms" for k, v in stage_ms.items()), file=log)
    if failure:
        raise failure
    return summary


def interrupt(signum, frame):
    raise KeyboardInterrupt


def frame_result(index, seconds, prediction, fps):
    known = prediction is not None and prediction.class_id is not None
    return {"frame": index, "time": round(seconds, 4),
            "label": prediction.label if known else None, "class_id": prediction.class_id if known else None,
            "confidence": prediction.confidence if prediction else 0.0,
            "top_k": prediction.top_k if prediction else [], "box": prediction.box if prediction else None,
            "fps": round(fps, 2)}


class Writer:
    """An overlaid video written under a temporary name and moved into place when finished."""

    def __init__(self, path, fps):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps, self.video = fps, None

    def write(self, frame):
        if self.video is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"))
            self.video = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, (frame.shape[1], frame.shape[0]))
            if not self.video.isOpened():
                raise camera.CameraError(f"{self.path}: cannot write a video there; use a .mp4 or .avi name in a writable folder")
        self.video.write(frame)

    def close(self):
        if self.video is not None:
            self.video.release()
            os.replace(self.tmp, self.path)
