"""The Python API: photo in, garment label out.

    from fashion_edge import Classifier
    clf = Classifier()
    p = clf.predict("shirt.jpg")
    print(p.label, p.confidence, p.box)
"""
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fashion_edge import garments, images, preprocess
from fashion_edge.garments import CLASSES, RegionFinder
from fashion_edge.model import MAX_VIEWS, Model
from fashion_edge.report import numbered_name

UNKNOWN = "unknown"
# Views averaged per photo by default (see model.view_batch). All ten buy a few tenths of a point
# on photos for ten times the inference, still small beside preprocessing; the webcam takes one,
# since it averages over frames instead.
DEFAULT_VIEWS = MAX_VIEWS
# A garment alone nearest an out-of-class prototype is unknown unless its answer has this share of
# the probability (see Model.out_of_class): the middle of the range over which caps, socks and
# shorts stayed unknown while fewer known garments were.
SURE = 0.35


@dataclass
class Prediction:
    label: str                 # a class name, or "unknown"
    class_id: int | None       # None when unknown
    confidence: float          # probability of the top class
    top_k: list = field(default_factory=list)  # [{"label", "class_id", "confidence"}], best first
    box: list | None = None    # [x, y, w, h] of the garment in the original image
    garments: list = field(default_factory=list)  # [{"label", "class_id", "confidence", "box"}], the main one first
    path: str | None = None

    def to_dict(self):
        """The shape `classify --json` prints: the path first, where there is one."""
        d = asdict(self)
        path = d.pop("path")
        return d if path is None else {"path": path, **d}


class Classifier:
    """Classifies photos (paths or BGR/grayscale numpy arrays) with an ONNX model.

    model: path to a .onnx file from export.to_onnx (default: the packaged model).
    threads: threads that prepare photos (default: one per core) and run the model (default:
        onnxruntime's choice).
    min_confidence: below it the answer is "unknown" (default: the value recorded in the model).
    top_k: how many classes each result lists.
    views: how many views of each photo the answer averages, 1 to 10 (see model.view_batch).
    people: find the garments a person wears with the garment-region network (see garments.py);
        False treats every photo as one garment alone.
    """

    def __init__(self, model=None, threads=None, min_confidence=None, top_k=3, views=DEFAULT_VIEWS, people=True):
        self.model = model if isinstance(model, Model) else Model(model, threads)
        # One thread a photo: prepare_all() already prepares `threads` photos at once, and a
        # network on several threads in each of them halved a folder's throughput on 2 cores.
        self.regions = RegionFinder(threads=1) if people else None
        self.labels = self.model.labels
        self.min_confidence = self.model.min_confidence if min_confidence is None else min_confidence
        self.top_k = top_k
        self.threads = threads or os.cpu_count() or 1
        if not 1 <= views <= MAX_VIEWS:
            raise ValueError(f"views must be from 1 to {MAX_VIEWS}, not {views}")
        self.views = views

    def prepare(self, image_or_path):
        """The model input for one photo, with the garment's box and debug images (preprocess.Prepared)."""
        if isinstance(image_or_path, (str, Path)):
            image, (fx, fy) = images.load_reduced(image_or_path, preprocess.DETAIL_SIDE)
        else:
            image, (fx, fy) = images.normalize(image_or_path), (1, 1)
        prepared = garments.prepare(image, self.regions)
        if (fx, fy) != (1, 1):  # boxes are in the file's pixels, not the reduced image's
            for garment in prepared.garments or [prepared]:
                x, y, w, h = garment.box
                x0, y0 = int(x * fx), int(y * fy)
                garment.box = (x0, y0, math.ceil((x + w) * fx) - x0, math.ceil((y + h) * fy) - y0)
        return prepared

    def prepare_all(self, items):
        """prepare() for each item, in order, each giving a Prepared or the ImageError that refused it.

        Decoding and segmentation are OpenCV calls that release the GIL, so threads prepare
        several photos at once: a folder of photos is classified about 1.8x faster on 2 cores.
        """
        def attempt(item):
            try:
                return self.prepare(item)
            except images.ImageError as e:
                return e
        if len(items) == 1 or self.threads == 1:  # predict() of one photo or frame: no threads to start
            return [attempt(item) for item in items]
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(attempt, items))

    def predict(self, image_or_path):
        return self.predict_batch([image_or_path])[0]

    def predict_batch(self, items, batch_size=64):
        """One Prediction per item, in order. Raises images.ImageError for an unusable input."""
        out = []
        for _, prepared, prediction in self.results(items, batch_size):
            if prediction is None:
                raise prepared
            out.append(prediction)
        return out

    def predict_paths(self, paths, batch_size=64, debug_dir=None):
        """Yields (path, Prediction or ImageError) for each path, in order: a bad file never stops the rest."""
        for index, (path, prepared, prediction) in enumerate(self.results(paths, batch_size)):
            if prediction is not None and debug_dir is not None:
                preprocess.save_debug(prepared, debug_dir, numbered_name(index, path))
            yield path, prediction or prepared

    def results(self, items, batch_size=64):
        """Yields (item, Prepared or ImageError, Prediction or None) for each item, in order, a batch at a time."""
        for item, prepared, prediction, _ in self.embedded_results(items, batch_size):
            yield item, prepared, prediction

    def embedded_results(self, items, batch_size=64):
        """results() with each item's embedding (see classify_embedded()), None where it failed:
        yields (item, Prepared or ImageError, Prediction or None, float32 [D] or None)."""
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            prepared = self.prepare_all(chunk)
            ready = [p for p in prepared if not isinstance(p, images.ImageError)]
            predictions, embeddings = self.classify_embedded(ready) if ready else ([], [])
            answers = iter(zip(predictions, embeddings))
            for item, p in zip(chunk, prepared):
                prediction, embedding = (None, None) if isinstance(p, images.ImageError) else next(answers)
                if prediction is not None and isinstance(item, (str, Path)):
                    prediction.path = str(item)
                yield item, p, prediction, embedding

    def classify_embedded(self, prepared):
        """(classify()'s Predictions, unit-length embeddings [N, D]) in one model run. A photo's
        embedding is its main garment's, the one its Prediction's top-level fields describe."""
        probs, embedding = self.outputs([g for p in prepared for g in p.garments or [p]])
        starts = np.cumsum([0] + [len(p.garments or [p]) for p in prepared])
        unknown = self.model.out_of_class(embedding)
        predictions = [self.decide(probs[a:b], unknown[a:b], p) for a, b, p in zip(starts, starts[1:], prepared)]
        return predictions, embedding[starts[:-1]]

    def classify(self, prepared):
        """Predictions for already prepared inputs (a list of preprocess.Prepared), every garment in one batch."""
        return self.classify_embedded(prepared)[0]

    def probabilities(self, inputs):
        """Class probabilities [N, classes] of prepared inputs, or of model inputs [N, 1, 28, 28]."""
        pixels = inputs if isinstance(inputs, np.ndarray) else np.stack([p.pixels for p in inputs])[:, None]
        return self.model.run(pixels, self.views)[0]

    def outputs(self, prepared):
        """(class probabilities [N, classes], unit-length embeddings [N, D]) of prepared inputs, in one
        run. Embeddings are centred on the model's embedding_mean before they are scaled to length 1."""
        probs, embedding = self.model.run(np.stack([p.pixels for p in prepared])[:, None], self.views)
        return probs, unit(embedding - self.model.embedding_mean)

    def decide(self, rows, unknown, prepared):
        """The Prediction that class probabilities make for a prepared input: rows [garments, classes],
        one row for each of prepared.garments, or one row for a garment alone; unknown [garments]
        marks those whose embedding is nearest an out-of-class prototype (Model.out_of_class)."""
        answers = [self.name(row, g, u) for row, g, u in zip(rows, prepared.garments or [prepared], unknown)]
        listed = [{k: a[k] for k in ("label", "class_id", "confidence", "box")} for a in answers if a["box"]]
        return Prediction(**answers[0], garments=listed)

    def name(self, probs, garment, unknown=False):
        """{"label", "class_id", "confidence", "top_k", "box"} for one garment's probabilities [classes].

        On a person the garment's region limits its classes (an upper-body garment is no trouser)
        and the confidence is the share of the allowed classes' probability; an out-of-class
        region (a skirt, shorts) is unknown whatever the classifier thinks, and so is a garment
        alone nearest an out-of-class prototype (unknown) unless the answer is sure.
        """
        allowed = list(CLASSES[garment.region.name] if garment.region else range(len(probs)))
        share = probs
        if allowed and len(allowed) < len(probs):
            share = np.zeros_like(probs)
            share[allowed] = probs[allowed] / max(float(probs[allowed].sum()), 1e-9)
        order = [int(i) for i in np.argsort(share)[::-1][:self.top_k] if i in allowed or not allowed]
        top = [{"label": self.labels[i], "class_id": i, "confidence": round(float(share[i]), 4)} for i in order]
        best = order[0]
        # On a person the garment's region says what it may be; the prototypes judge garments alone.
        unknown = unknown and garment.region is None and share[best] < SURE
        confident = garment.found and bool(allowed) and share[best] >= self.min_confidence and not unknown
        return {"label": self.labels[best] if confident else UNKNOWN, "class_id": best if confident else None,
                "confidence": round(float(share[best]), 4), "top_k": top,
                "box": [int(v) for v in garment.box] if garment.found else None}


def unit(vectors):
    """Rows scaled to length 1, so that a dot product is the cosine similarity."""
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
