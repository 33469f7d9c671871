"""`fashion-edge bench`: speed figures, each beside a baseline measured in the same run."""
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fashion_edge import cpu, images, preprocess
from fashion_edge.model import FP32_MODEL, MAX_VIEWS, Model
from fashion_edge.timing import latency_and_throughput, percentiles, time_calls

# The PyTorch baseline lives with the training code, so that the runtime never imports torch;
# it runs from a checkout, where the train package is importable.
TORCH_SCRIPT = ["-m", "train.classify_torch"]
# The checkout this runtime was installed from (pip install -e), where train/ lives: the
# baseline runs there, whatever the working directory.
CHECKOUT = Path(__file__).resolve().parents[1]


class BenchError(Exception):
    """A timed command failed: one line saying which and why."""


def run_torch(args):
    """train.classify_torch with args (absolute paths), run from the checkout."""
    return subprocess.run([sys.executable, *TORCH_SCRIPT, *args], capture_output=True, text=True, cwd=CHECKOUT)


def scene(width=640, height=480, seed=0):
    """A 640x480 photo-like test image: a dark shirt shape on a textured light floor."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(150, 220, (height, width, 3), dtype=np.uint8), (9, 9), 0)
    cx, cy = width // 2, height // 2
    body = np.array([[cx - 90, cy - 140], [cx + 90, cy - 140], [cx + 170, cy - 60], [cx + 120, cy - 20],
                     [cx + 90, cy - 60], [cx + 90, cy + 160], [cx - 90, cy + 160], [cx - 90, cy - 60],
                     [cx - 120, cy - 20], [cx - 170, cy - 60]], np.int32)
    cv2.fillPoly(img, [body], (70, 60, 130))
    return img


def framed(photo, size=(640, 480), drift=0.0):
    """A photo of a person framed as a webcam frames someone standing before it: as wide as the
    frame, from a little above the head down to the hips or knees; drift (-1 to 1) moves the view
    up or down by 8 pixels, as a person sways."""
    w, h = size
    person = cv2.resize(photo, None, fx=w / photo.shape[1], fy=w / photo.shape[1], interpolation=cv2.INTER_AREA)
    person = cv2.copyMakeBorder(person, 0, max(0, h - person.shape[0]), 0, 0, cv2.BORDER_REPLICATE)
    top = min(max(int(0.1 * person.shape[0] + 8 * drift), 0), person.shape[0] - h)
    return np.ascontiguousarray(person[top:top + h])


def inference(models, runs, batch=64):
    """Single-image latency and batch throughput of each model: {name: {...}}."""
    x1 = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    xb = np.random.default_rng(1).random((batch, 1, 28, 28), dtype=np.float32)
    return {name: latency_and_throughput(lambda: run(x1), lambda: run(xb), batch, runs) for name, run in models.items()}


def torch_eager(checkpoint, threads, runs):
    """PyTorch eager latency, measured by train.classify_torch of a checkout; None without torch."""
    proc = run_torch([str(Path(checkpoint).resolve()), "--time", str(runs)] + (["--threads", str(threads)] if threads else []))
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def preprocessing(clf, runs, image):
    """Photo-to-input time for a 640x480 image, on one core: the person check included, as classify does it."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return percentiles(time_calls(lambda: clf.prepare(image), runs, warmup=5))
    finally:
        cv2.setNumThreads(threads)


def preparation_throughput(clf, image, count=64):
    """Photos a second that Classifier.prepare_all gets through on the classifier's threads, beside one thread."""
    from fashion_edge.classifier import Classifier

    def rate(c):
        c.prepare_all([image] * 4)
        t = time.perf_counter()
        c.prepare_all([image] * count)
        return count / (time.perf_counter() - t)
    return {"threads": clf.threads, "photos_per_s": rate(clf),
            "one_thread_photos_per_s": rate(Classifier(clf.model, threads=1))}


def cold_start(photo, checkpoint=None, repeats=5):
    """Wall time of a whole `fashion-edge classify PHOTO` process, beside a plain PyTorch script doing the same."""
    def wall(cmd):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=CHECKOUT)
            times.append(time.perf_counter() - t)
            if proc.returncode != 0:
                reason = (proc.stderr.strip().splitlines() or ["no message"])[-1][:200]
                raise BenchError(f"{' '.join(cmd[1:4])} failed during the cold-start timing ({reason})")
        return statistics.median(times)
    photo, checkpoint = Path(photo).resolve(), checkpoint and Path(checkpoint).resolve()
    out = {"fashion_edge_s": wall([sys.executable, "-m", "fashion_edge", "classify", str(photo)])}
    if checkpoint:
        out["pytorch_script_s"] = wall([sys.executable, *TORCH_SCRIPT, str(checkpoint), str(photo)])
        out["ratio"] = out["fashion_edge_s"] / out["pytorch_script_s"]
    return out


def pipeline(clf, base, frames=200):
    """The webcam loop on a 640x480 video file of an image drifting sideways: per-stage milliseconds and frames per second."""
    from fashion_edge import webcam
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.avi"
        video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
        for i in range(frames):
            video.write(np.roll(base, 4 * (i % 20), axis=1))
        video.release()
        with open(Path(tmp) / "log", "w") as log:
            summary = webcam.run(clf, str(path), display=False, log=log)
    return {"fps": summary["fps"], "stage_ms": {k: v for k, v in summary["stage_ms"].items() if k != "start"}}


def person_path(clf, image, runs):
    """What a photo of a person costs, stage by stage, on one core (p50 ms), beside a garment alone."""
    from fashion_edge import garments
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        p50 = lambda call: percentiles(time_calls(call, runs, warmup=3))["p50"]
        regions = clf.regions.find(image)
        prepared = garments.prepare(image, clf.regions)
        first, second = clf.regions.scores(image), clf.regions.scores(image, garments.SECOND_SIDE)
        stages = {"region network": p50(lambda: clf.regions.scores(image)),
                  "is a person in view": p50(lambda: clf.regions.codes_of(first.argmax(0))),
                  "region network, larger": p50(lambda: clf.regions.scores(image, garments.SECOND_SIDE)),
                  "masks and boxes": p50(lambda: clf.regions.regions_of(garments.averaged(first, second), *image.shape[:2])),
                  "render each garment": p50(lambda: [preprocess.render(image, r.mask, r.box) for r in regions]),
                  "classify every garment": p50(lambda: clf.classify([prepared]))}
        return {"garments": len(regions), "stage_ms": stages, "total_ms": sum(stages.values()),
                "garment_alone_ms": p50(lambda: clf.classify([preprocess.prepare(image)]))
                + p50(lambda: preprocess.prepare(image))}
    finally:
        cv2.setNumThreads(threads)


def model_runs(model, other):
    """{row name: probabilities(pixels)} at one view and at ten, for the model and the one it is compared with."""
    from fashion_edge.classifier import Classifier
    rows = {}
    for m in (model, other):
        name = f"{m.metadata.get('precision', 'model')} ({m.path.name})"
        for views in (1, MAX_VIEWS):
            rows[f"{name}, {views} view{'s' if views > 1 else ''}"] = Classifier(m, views=views).probabilities
    return rows


def run_all(model_path=None, compare=None, checkpoint=None, threads=None, runs=500, photo=None, person=None,
            log=sys.stderr):
    from fashion_edge.classifier import Classifier
    # Read first, so that an unusable photo fails before any timing is done.
    image = scene() if photo is None else cv2.resize(images.load(photo), (640, 480), interpolation=cv2.INTER_AREA)
    people = person and framed(images.load(person))
    clf = Classifier(model_path, threads=threads, views=1)
    other = Model(compare or FP32_MODEL, threads)
    print("timing inference ...", file=log)
    results = {"cpu": cpu.describe(), "inference": inference(model_runs(clf.model, other), runs)}
    if checkpoint:
        eager = torch_eager(checkpoint, threads, runs)
        if eager is None:
            print("train.classify_torch could not run (is torch installed, and is this a checkout?): "
                  "the PyTorch baselines are skipped", file=log)
            checkpoint = None
        else:
            results["inference"]["pytorch eager, 10 views"] = eager
    print("timing preprocessing ...", file=log)
    results["preprocess_640x480_ms"] = preprocessing(clf, max(runs // 5, 20), image)
    results["preparation_throughput"] = preparation_throughput(clf, image)
    print("timing the webcam pipeline ...", file=log)
    results["webcam_pipeline"] = pipeline(clf, scene())
    results["webcam_pipeline_alone"] = pipeline(Classifier(clf.model, threads=threads, views=1, people=False), scene())
    if people is not None:
        print("timing the person path ...", file=log)
        results["person_path"] = person_path(clf, people, max(runs // 10, 20))
        results["webcam_pipeline_person"] = pipeline(clf, people)
    print("timing cold starts ...", file=log)
    with tempfile.TemporaryDirectory() as tmp:
        if photo is None:
            photo = Path(tmp) / "scene.jpg"
            cv2.imwrite(str(photo), scene())
        results["cold_start"] = cold_start(photo, checkpoint)
    return results
