"""The ONNX model session and what the model file says about itself.

Class names, the input convention and the recommended confidence threshold come from the
model file's metadata, written by export/to_onnx.py; the runtime keeps no copy of them.
"""
import json
from pathlib import Path

import numpy as np

DEFAULT_MODEL = Path(__file__).parent / "models" / "fashion-cnn.onnx"


class ModelError(Exception):
    """The model file is missing or not one this runtime can use."""


class Model:
    def __init__(self, path=None, threads=None):
        import onnxruntime as ort  # imported here: the CLI's start-up stays fast for --help and errors

        self.path = Path(path or DEFAULT_MODEL)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for a missing or broken file
            reason = str(e).strip().splitlines()[-1][:200]
            raise ModelError(f"{self.path}: cannot load the model ({reason}); "
                             "pass a .onnx file made by export/to_onnx.py") from None
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        try:
            self.labels = json.loads(self.metadata["labels"])
            self.input_convention = json.loads(self.metadata["input"])
        except (KeyError, ValueError):
            raise ModelError(f"{self.path}: no 'labels'/'input' metadata; export the model with export/to_onnx.py") from None
        self.min_confidence = float(self.metadata.get("min_confidence", 0.5))
        self.input_name = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        assert outputs[:2] == ["probabilities", "embedding"], f"{self.path}: unexpected outputs {outputs}"

    def run(self, pixels):
        """float32 [N, 1, 28, 28] in [0, 1] -> (probabilities [N, classes], embedding [N, D])."""
        probs, embedding = self.session.run(None, {self.input_name: np.ascontiguousarray(pixels, np.float32)})
        return probs, embedding

    def info(self):
        import onnxruntime as ort
        meta = {k: v for k, v in self.metadata.items() if k not in ("labels", "input", "min_confidence")}
        return {"model_path": str(self.path), "labels": self.labels, "input": self.input_convention,
                "test_accuracy": float(meta.pop("test_accuracy", "nan")), "min_confidence": self.min_confidence,
                "metadata": meta, "onnxruntime": ort.__version__, "providers": self.session.get_providers()}
