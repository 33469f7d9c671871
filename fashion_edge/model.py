"""The ONNX model session and what the model file says about itself.

Class names, the input convention and the recommended confidence threshold come from the
model file's metadata, written by export.to_onnx; the runtime keeps no copy of them.
"""
import json
from pathlib import Path

import numpy as np

from fashion_edge import cpu

DEFAULT_MODEL = Path(__file__).parent / "models" / "fashion-cnn.onnx"
FP32_MODEL = DEFAULT_MODEL.with_name("fashion-cnn-fp32.onnx")  # the same network unquantized, for comparison
# A prediction may average the probabilities of up to ten views of the image: itself and its
# mirror image, then each one-pixel shift (rows, columns) and its mirror image. Training shifts
# and flips its images, so each view is one the network knows and each is a second opinion.
VIEW_SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
MAX_VIEWS = 2 * len(VIEW_SHIFTS)


def view_batch(pixels, count):
    """[N, 1, 28, 28] -> [count * N, 1, 28, 28]: the first `count` views of every image, view by view."""
    if not 1 <= count <= MAX_VIEWS:
        raise ValueError(f"views must be from 1 to {MAX_VIEWS}, not {count}")
    if count == 1:  # the webcam's case, once a frame
        return pixels
    padded = np.pad(pixels, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = []
    for dy, dx in VIEW_SHIFTS:
        view = padded[:, :, 1 + dy:29 + dy, 1 + dx:29 + dx]
        out += [view, view[..., ::-1]]
    return np.concatenate(out[:count])


class ModelError(Exception):
    """The model file is missing or not one this runtime can use."""


def open_session(path, threads, maker):
    """An onnxruntime session on the CPU for a model file that `maker` (an export module) writes."""
    import onnxruntime as ort  # imported here: the CLI's start-up stays fast for --help and errors

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for a missing or broken file
        reason = str(e).strip().splitlines()[-1][:200]
        raise ModelError(f"{path}: cannot load the model ({reason}); pass a .onnx file made by {maker}") from None


class Model:
    def __init__(self, path=None, threads=None):
        self.path = Path(path or DEFAULT_MODEL)
        self.session = open_session(self.path, threads, "export.to_onnx")
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.labels = json.loads(self.metadata["labels"])
            self.input_convention = json.loads(self.metadata["input"])
        except (KeyError, ValueError):
            raise ModelError(f"{self.path}: no 'labels'/'input' metadata; export the model with export.to_onnx") from None
        self.min_confidence = float(self.metadata.get("min_confidence", 0.5))
        # Embeddings are ReLU features, all in one orthant: centred on the training images' mean
        # before they are compared, they tell look-alikes apart better (docs/experiments.md).
        self.embedding_mean = np.asarray(json.loads(self.metadata.get("embedding_mean", "0")), np.float32)
        self.prototypes = self.read_prototypes()
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs[:2] != ["probabilities", "embedding"]:
            raise ModelError(f"{self.path}: outputs {outputs}, not probabilities and embedding; "
                             "export the model with export.to_onnx")

    def read_prototypes(self):
        """(garment prototypes [G, D], out-of-class prototypes [O, D]) from export.unknown_prototypes, or None."""
        if "unknown_prototypes" not in self.metadata:
            return None
        try:
            entry = json.loads(self.metadata["unknown_prototypes"])
            return np.asarray(entry["garment"], np.float64), np.asarray(entry["out_of_class"], np.float64)
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{self.path}: its 'unknown_prototypes' metadata is unreadable; "
                             "write it again with export.unknown_prototypes") from None

    def out_of_class(self, embeddings):
        """Whether each centred unit embedding [N, D] is nearer an out-of-class prototype (a sock, a
        hat) than any garment's: such a garment is likely none of the classes. All False for a
        model without prototypes."""
        if self.prototypes is None:
            return np.zeros(len(embeddings), bool)
        garment, out_of_class = self.prototypes
        embeddings = np.asarray(embeddings, np.float64)  # so that only a tie to 1e-15 could read differently on another CPU
        return (embeddings @ out_of_class.T).max(1) > (embeddings @ garment.T).max(1)

    def run(self, pixels, views=1):
        """float32 [N, 1, 28, 28] in [0, 1] -> (probabilities [N, classes], embedding [N, D]).

        Both are averaged over `views` views of each image (see view_batch()), so a look-alike
        search and the label see the same image.
        """
        n = len(pixels)
        batch = view_batch(np.asarray(pixels, np.float32), views)
        probs, embedding = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})
        return probs.reshape(views, n, -1).mean(0), embedding.reshape(views, n, -1).mean(0)

    def info(self):
        import onnxruntime as ort
        shown_apart = ("labels", "input", "min_confidence", "embedding_mean", "unknown_prototypes")
        meta = {k: v for k, v in self.metadata.items() if k not in shown_apart}
        return {"model_path": str(self.path), "labels": self.labels, "input": self.input_convention,
                "test_accuracy": float(meta.pop("test_accuracy", "nan")), "min_confidence": self.min_confidence,
                "unknown_prototypes": None if self.prototypes is None else
                {"garment": len(self.prototypes[0]), "out_of_class": len(self.prototypes[1])},
                "metadata": meta, "onnxruntime": ort.__version__, "providers": self.session.get_providers(),
                "cpu": cpu.summary()}
