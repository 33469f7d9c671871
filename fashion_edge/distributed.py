"""`fashion-edge index --ray ADDRESS`: embedding spread over a Ray cluster, with Ray Data.

Each worker is a Ray actor holding its own Classifier; Ray Data hands it batches of paths and
gathers the predictions and embeddings back to this process, which writes the catalogue as
for a local run. The workers read the photos themselves: on a cluster the paths must name the
same files on every machine (a shared or mounted folder) and fashion-edge must be installed
there. Needs the optional extra fashion-edge[ray].
"""
import json
import logging
import math

import numpy as np

from fashion_edge.classifier import Prediction
from fashion_edge.images import ImageError


class RayError(Exception):
    """Ray is missing or its cluster cannot be reached; the message is one line."""


class Embedder:
    """A Ray Data actor: one Classifier; a batch of paths in, predictions and embeddings out."""

    model, views = None, 1  # set on a subclass per run (worker()): Ray warns of constructor arguments

    def __init__(self):
        from fashion_edge.classifier import Classifier
        self.clf = Classifier(self.model, threads=1, views=self.views)  # Ray gives each actor one CPU

    def __call__(self, batch):
        rows = {"path": [], "prediction": [], "error": [], "embedding": []}
        paths = [str(p) for p in batch["path"]]
        for path, prepared, prediction, embedding in self.clf.embedded_results(paths, len(paths)):
            rows["path"].append(path)
            rows["prediction"].append("" if prediction is None else json.dumps(prediction.to_dict()))
            rows["error"].append("" if prediction is not None else str(prepared))
            rows["embedding"].append(np.zeros(0, np.float32) if embedding is None else embedding)
        width = max(len(e) for e in rows["embedding"])
        rows["embedding"] = np.stack([e if len(e) else np.zeros(width, np.float32) for e in rows["embedding"]])
        return {k: np.asarray(v) for k, v in rows.items()}


class RayEmbedder:
    """Classifier.embedded_results() on a Ray cluster: the Catalog.update() embedder for --ray."""

    def __init__(self, address, workers, model, views):
        self.ray = connect(address)
        self.model, self.views = model, views
        self.workers = workers or max(1, int(self.ray.cluster_resources().get("CPU", 1)))

    def embedded_results(self, paths, batch_size=64):
        """Yields (path, ImageError or None, Prediction or None, embedding or None), in input order."""
        if not paths:
            return
        data = self.ray.data
        context = data.DataContext.get_current()
        context.execution_options.preserve_order = True
        size = min(batch_size, math.ceil(len(paths) / self.workers))
        items = data.from_items([{"path": str(p)} for p in paths], override_num_blocks=math.ceil(len(paths) / size))
        worker = type("Embedder", (Embedder,), {"model": self.model, "views": self.views})
        batches = items.map_batches(worker, batch_size=size, compute=data.ActorPoolStrategy(size=self.workers),
                                    batch_format="numpy")
        for row in batches.iter_rows():
            if row["error"]:
                yield row["path"], ImageError(str(row["error"])), None, None
            else:
                yield row["path"], None, Prediction(**json.loads(row["prediction"])), row["embedding"]


def connect(address):
    """Ray, connected: 'local' starts an instance on this machine; 'auto' or ray://HOST:PORT joins one."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayError("--ray needs Ray Data: pip install 'fashion-edge[ray]'") from None
    try:
        ray.init(address=None if address == "local" else address, logging_level=logging.ERROR,
                 log_to_driver=False, include_dashboard=False, ignore_reinit_error=True,
                 configure_logging=True)
        quiet(ray)
    except (ConnectionError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise RayError(f"--ray {address}: cannot connect ({reason}); start a cluster with 'ray start --head', "
                       "or pass --ray local") from None
    return ray


def quiet(ray):
    """Ray Data's start and finish lines and its progress bars off: index prints its own progress."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
