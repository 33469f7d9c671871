"""`fashion-edge webcam`: classify live camera frames, show them, stream them, log them.

One visible loop: read a frame, preprocess() it, classify(), draw(), hand the result to each
sink (a window, the browser page, JSON lines, a video file).
"""
import collections
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from fashion_edge import camera, files
from fashion_edge.server import Server

NOTHING = "nothing in view"
WINDOW = "fashion-edge"
# --save's codec by the file's suffix. OpenCV's wheels carry no H.264 encoder, so only VP8 in
# WebM plays in a browser; MPEG-4 Part 2 (.mp4) and MJPEG (.avi, .mkv) play in video players.
CODECS = {".webm": "VP80", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


def preprocess(clf, frame):
    """The frame's model inputs: a garment alone, or each garment a person wears (Classifier.prepare)."""
    return clf.prepare(frame)


class Ahead:
    """Frames from a source, each already on its way through preprocess() on a pool of threads.

    Preprocessing is most of a frame's time and OpenCV releases the GIL while it works, so
    preparing the next frames while this one is classified and drawn uses every core.
    """

    def __init__(self, clf, src, workers):
        self.clf, self.src, self.workers, self.pending = clf, src, workers, collections.deque()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="preprocess") if workers > 1 else None
        self.busy = 0.0  # seconds spent in preprocess(), on all threads together

    def _prepare(self, frame):
        t = time.perf_counter()
        prepared = preprocess(self.clf, frame)
        self.busy += time.perf_counter() - t
        return prepared

    def read(self):
        """(index, frame, Prepared), or None at the end."""
        while len(self.pending) < self.workers and (item := self.src.read()) is not None:
            index, frame = item
            work = self.pool.submit(self._prepare, frame) if self.pool else self._prepare(frame)
            self.pending.append((index, frame, work))
        if not self.pending:
            return None
        index, frame, work = self.pending.popleft()
        return index, frame, work if self.pool is None else work.result()

    def close(self):
        if self.pool:
            self.pool.shutdown(cancel_futures=True)


def classify(clf, prepared, recent):
    """(the prediction for this frame, the main garment's embedding for look-alikes), from one
    model run; each garment's probabilities are averaged with those of the same region in the
    recent frames so labels do not flicker. (None, None) when nothing is in view."""
    if not prepared.found:
        recent.append({})
        return None, None
    garments = prepared.garments or [prepared]
    keys = [g.region.name if g.region else None for g in garments]
    probs, embedding = clf.outputs(garments)
    recent.append(dict(zip(keys, probs)))
    smoothed = [np.mean([r[k] for r in recent if k in r], axis=0) for k in keys]
    return clf.decide(np.stack(smoothed), clf.model.out_of_class(embedding), prepared), embedding[0]


def title(prediction):
    """The overlay's and the summary's name for a frame's answer."""
    if prediction is None:
        return NOTHING
    if prediction.class_id is None:
        return f"unknown (closest: {prediction.top_k[0]['label']})"
    return f"{prediction.label} {prediction.confidence:.0%}"


def draw(frame, prediction, fps):
    """The frame with the garment's box, the label, top-3 bars and the frame rate drawn on it."""
    canvas = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for garment in prediction.garments if prediction is not None else []:
        x, y, w, h = garment["box"]
        colour = (0, 220, 0) if garment["class_id"] is not None else (0, 200, 255)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
        if len(prediction.garments) > 1:  # one garment's name is the title already
            cv2.putText(canvas, garment["label"], (x + 4, y + 18), font, 0.55, colour, 2, cv2.LINE_AA)
    cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 34), (0, 0, 0), -1)
    cv2.putText(canvas, title(prediction), (8, 24), font, 0.75, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(canvas, f"{fps:5.1f} fps", (canvas.shape[1] - 110, 24), font, 0.6, (200, 200, 200), 1, cv2.LINE_AA)
    if prediction is not None:
        cv2.rectangle(canvas, (0, 34), (300, 40 + 22 * len(prediction.top_k[:3])), (0, 0, 0), -1)
        for i, top in enumerate(prediction.top_k[:3]):
            y = 50 + 22 * i
            cv2.rectangle(canvas, (8, y - 12), (8 + int(120 * top["confidence"]), y + 4), (0, 180, 255), -1)
            cv2.putText(canvas, f"{top['label']} {top['confidence']:.2f}", (134, y), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def frame_result(index, seconds, prediction, fps):
    """A frame's JSON line: label null when nothing is in view, "unknown" when a garment is unsure."""
    return {"frame": index, "time": round(seconds, 4),
            "label": prediction.label if prediction else None, "class_id": prediction.class_id if prediction else None,
            "confidence": prediction.confidence if prediction else 0.0,
            "top_k": prediction.top_k if prediction else [], "box": prediction.box if prediction else None,
            "garments": prediction.garments if prediction else [], "fps": round(fps, 2)}


# The sinks: each takes every frame's result and, if it draws, the overlaid frame; show()
# returns False when the viewer asks to stop.

class JsonSink:
    draws = False

    def __init__(self, out):
        self.out = out

    def show(self, result, canvas):
        print(json.dumps(result), file=self.out, flush=True)
        return True

    def close(self):
        pass


class WindowSink:
    draws = True

    def show(self, result, canvas):
        cv2.imshow(WINDOW, canvas)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self):
        cv2.destroyAllWindows()


class BrowserSink:
    draws = True

    def __init__(self, host, port, log):
        self.server = Server(host, port)
        print(f"serving the live view on {self.server.url}", file=log)

    def show(self, result, canvas):
        self.server.broadcast.publish(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes(), result)
        return True

    def close(self):
        self.server.close()


class VideoSink:
    """An overlaid video written under a temporary name and moved into place when finished."""
    draws = True

    def __init__(self, path, fps):
        self.path = Path(path)
        self.tmp = files.partial_name(self.path)  # the video grows over the run; moved into place at close()
        self.fps, self.video = fps, None

    def show(self, result, canvas):
        if self.video is None:
            fourcc = cv2.VideoWriter_fourcc(*CODECS.get(self.path.suffix.lower(), "MJPG"))
            size = (canvas.shape[1], canvas.shape[0])
            self.video = without_stderr(lambda: cv2.VideoWriter(str(self.tmp), fourcc, self.fps, size))
            if not self.video.isOpened():
                raise camera.CameraError(f"{self.path}: cannot write a video there; use a .webm, .mp4 or .avi name "
                                         "in a writable folder")
        self.video.write(canvas)
        return True

    def close(self):
        if self.video is not None:
            self.video.release()
            os.replace(self.tmp, self.path)


def without_stderr(make):
    """make() with the process's stderr closed: for WebM OpenCV prints a harmless warning about
    the codec tag straight to it, which no log level silences."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        return make()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class Stats:
    """Frames, time per stage and the answers seen, for the summary, --verbose and `fashion-edge bench`."""

    def __init__(self):
        self.started = self.last = time.perf_counter()
        self.frames, self.stage, self.answers, self.rate = 0, collections.defaultdict(float), collections.Counter(), FrameRate()

    def lap(self, name):
        now = time.perf_counter()
        self.stage[name] += now - self.last
        self.last = now

    def count(self, prediction):
        self.frames += 1
        self.answers[prediction.label if prediction else NOTHING] += 1
        return self.rate.tick()

    def summary(self, preprocess_seconds):
        seconds = time.perf_counter() - self.started
        stage_ms = {name: 1000 * t / max(self.frames, 1) for name, t in self.stage.items()}
        stage_ms["preprocess (on worker threads)"] = 1000 * preprocess_seconds / max(self.frames, 1)
        return {"frames": self.frames, "seconds": round(seconds, 3), "fps": round(self.frames / max(seconds, 1e-9), 1),
                "labels": dict(self.answers.most_common()), "stage_ms": stage_ms}


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


def open_sinks(source, src, display, as_json, serve, save, out, log):
    sinks = [JsonSink(out)] if as_json else []
    if display and can_show_window():
        sinks.append(WindowSink())
    elif display:
        print("no display: running headless" + ("" if serve else
              f"; for a live view in a browser run: fashion-edge webcam --source {source} --serve 8080"), file=log)
    if serve:
        sinks.append(BrowserSink(*serve, log))
    if save:
        sinks.append(VideoSink(save, src.fps))
    return sinks


def loop(clf, frames, sinks, stats, max_frames=None, smooth=5, lookalikes=None):
    """The live loop, until the frames end, max_frames, or a sink's viewer quits.
    lookalikes: a lookalikes.Lookalikes (webcam --index), whose nearest items join each frame."""
    recent = collections.deque(maxlen=smooth)
    draws = any(sink.draws for sink in sinks)
    while max_frames is None or stats.frames < max_frames:
        item = frames.read()
        if item is None:
            break
        index, frame, prepared = item
        stats.lap("capture + preprocess")
        prediction, embedding = classify(clf, prepared, recent)
        similar = lookalikes.find(embedding) if lookalikes else None
        fps = stats.count(prediction)
        stats.lap("inference")
        result = frame_result(index, time.perf_counter() - stats.started, prediction, fps)
        canvas = draw(frame, prediction, fps) if draws else None
        if similar is not None:
            result["similar"], canvas = lookalikes.show(similar, canvas)
        if not all([sink.show(result, canvas) for sink in sinks]):
            break
        stats.lap("overlay and output")


def run(clf, source="0", width=None, height=None, display=True, as_json=False, serve=None, save=None,
        loop_video=False, max_frames=None, smooth=5, verbose=False, out=sys.stdout, log=sys.stderr, lookalikes=None):
    """Run the live loop until the source ends, max_frames, q/Esc, Ctrl-C or SIGTERM. Returns a summary dict.

    Raises camera.CameraError when the source cannot be opened or fails for good.
    """
    src = camera.open_source(source, width, height, loop_video)
    frames, stats, sinks, failure = Ahead(clf, src, clf.threads), Stats(), [], None
    previous = signal.signal(signal.SIGTERM, interrupt)  # SIGTERM ends the run as Ctrl-C does: through finally
    try:
        sinks = open_sinks(source, src, display, as_json, serve, save, out, log)
        stats.lap("start")
        loop(clf, frames, sinks, stats, max_frames, smooth, lookalikes)
    except KeyboardInterrupt:
        pass
    except camera.CameraError as e:
        failure = e
    finally:
        signal.signal(signal.SIGTERM, previous)
        frames.close()
        src.release()
        for sink in sinks:
            sink.close()
    summary = stats.summary(frames.busy)
    report(summary, verbose, log)
    if failure:
        raise failure
    return summary


def report(summary, verbose, log):
    answers = ", ".join(f"{k} {v}" for k, v in summary["labels"].items())
    print(f"{summary['frames']} frames in {summary['seconds']:.1f} s ({summary['fps']} fps); {answers or 'no frames'}",
          file=log)
    if verbose:
        stages = {k: v for k, v in summary["stage_ms"].items() if k != "start"}
        print("per frame: " + ", ".join(f"{k} {v:.2f} ms" for k, v in stages.items()), file=log)


def interrupt(signum, frame):
    raise KeyboardInterrupt
