"""faiss indexes, with the optional extra fashion-edge[ann] (faiss-cpu, which has aarch64 wheels).

Flat: exact, every stored float16 vector scored, faster than numpy's float32 product since it
reads half the memory. Approximate: an inverted file of 8-bit scalar-quantized vectors (IVF,
SQ8): a query scans only the lists of its NPROBE nearest centroids, 256 bytes an item.
docs/experiments.md has the figures behind these choices and the libraries that lost.
"""
import math

import numpy as np

NPROBE = 24
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
    def __init__(self, vectors, stored=None):
        f = faiss()
        if stored is not None:
            self.index = f.deserialize_index(np.asarray(stored, np.uint8))
        else:
            self.index = build(np.ascontiguousarray(vectors, np.float32))
        self.index.nprobe = NPROBE

    def to_bytes(self):
        return faiss().serialize_index(self.index)


def build(vectors):
    """An IVF,SQ8 inner-product index of float32 unit vectors [N, D]: about sqrt(N) lists."""
    f = faiss()
    lists = max(1, int(math.sqrt(len(vectors))))
    quantizer = f.IndexFlatIP(vectors.shape[1])
    index = f.IndexIVFScalarQuantizer(quantizer, vectors.shape[1], lists, f.ScalarQuantizer.QT_8bit,
                                      f.METRIC_INNER_PRODUCT)
    index.own_fields = True  # the index keeps its quantizer alive once Python's name for it is gone
    quantizer.this.disown()
    sample = np.random.default_rng(0).permutation(len(vectors))[:TRAINING_SAMPLE * lists]
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    return index
