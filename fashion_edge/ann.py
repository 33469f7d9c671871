"""faiss indexes, with the optional extra fashion-edge[ann] (faiss-cpu, which has aarch64 wheels).

Flat: exact, every stored float16 vector scored, faster than numpy's float32 product since it
reads half the memory. Approximate: an inverted file of 6-bit scalar-quantized vectors (IVF,
SQ6): a query scans only the lists of its NPROBE nearest centroids, 192 bytes an item.
docs/experiments.md has the figures behind these choices and the libraries that lost.
"""
import math

import numpy as np

NPROBE = 48
RESCORE = 4
TRAINING_SAMPLE = 64  # items per list that train the centroids: enough, and training stays seconds


def available():
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def faiss():
    import faiss as module
    return module


class Flat:
    def __init__(self, vectors):
        f = faiss()
        self.index = f.IndexScalarQuantizer(vectors.shape[1], f.ScalarQuantizer.QT_fp16, f.METRIC_INNER_PRODUCT)
        self.index.add(np.ascontiguousarray(vectors, np.float32))

    def search(self, queries, k):
        k = min(k, self.index.ntotal)
        return self.index.search(np.ascontiguousarray(np.atleast_2d(queries), np.float32), k)


class Approximate(Flat):
    """IVF,SQ6 candidates, re-scored with the catalogue's own float16 vectors: 6-bit codes blur
    near-ties, and re-scoring RESCORE times k candidates restores their order for little time
    (the vectors are memory-mapped, so only the candidates' rows are read)."""

    def __init__(self, vectors, stored=None):
        f = faiss()
        if stored is not None:
            self.index = f.deserialize_index(np.asarray(stored, np.uint8))
        else:
            self.index = build(np.ascontiguousarray(vectors, np.float32))
        self.index.nprobe = NPROBE
        self.vectors = vectors  # the catalogue's matrix, not a copy

    def search(self, queries, k):
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        _, candidates = super().search(queries, RESCORE * k)
        k = min(k, candidates.shape[1])
        scores, ids = np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
        for row, (query, found) in enumerate(zip(queries, candidates)):
            found = found[found >= 0]
            exact = self.vectors[found].astype(np.float32) @ query
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, :len(best)], ids[row, :len(best)] = exact[best], found[best]
        return scores, ids

    def to_bytes(self):
        return faiss().serialize_index(self.index)


def build(vectors):
    """An IVF,SQ6 inner-product index of float32 unit vectors [N, D]: about sqrt(N) lists."""
    f = faiss()
    lists = max(1, int(math.sqrt(len(vectors))))
    quantizer = f.IndexFlatIP(vectors.shape[1])
    index = f.IndexIVFScalarQuantizer(quantizer, vectors.shape[1], lists, f.ScalarQuantizer.QT_6bit,
                                      f.METRIC_INNER_PRODUCT)
    index.own_fields = True  # the index keeps its quantizer alive once Python's name for it is gone
    quantizer.this.disown()
    sample = np.random.default_rng(0).permutation(len(vectors))[:TRAINING_SAMPLE * lists]
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    return index
