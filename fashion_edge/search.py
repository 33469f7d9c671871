"""Nearest neighbours of unit-length embeddings by inner product (cosine similarity).

Exact search by default: numpy scores every item (one matrix-vector product) and keeps the
top k with argpartition. With the optional extra fashion-edge[ann] (faiss) exact search runs
on faiss's flat float16 index, which scores the same stored float16 values about three times
faster, and from APPROXIMATE_FROM items on an approximate index (ann.py), since past that an
exact scan no longer meets the latency targets. Figures: benchmarks/search_speed.py.
"""
import numpy as np

APPROXIMATE_FROM = 200_000


class Exact:
    """Every item scored with numpy: float32 [N, D] kept resident, float16 stored."""

    def __init__(self, vectors):
        self.matrix = np.ascontiguousarray(vectors, np.float32)

    def search(self, queries, k):
        """(scores [Q, k'], ids [Q, k']), best first, k' = min(k, N)."""
        scores = np.atleast_2d(queries).astype(np.float32) @ self.matrix.T
        k = min(k, scores.shape[1])
        if k == 0:
            return np.zeros((len(scores), 0), np.float32), np.zeros((len(scores), 0), np.int64)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.argsort(-scores, axis=1)
        best = np.take_along_axis(scores, part, 1)
        order = np.argsort(-best, axis=1, kind="stable")
        return np.take_along_axis(best, order, 1), np.take_along_axis(part, order, 1)


def engine(vectors, ann_bytes=None, approximate=None):
    """The engine for a float16 matrix [N, D]: numpy without faiss; with it, faiss's exact flat
    index, or its approximate one from APPROXIMATE_FROM items (approximate=True/False forces it).
    ann_bytes: an approximate index stored with the catalogue (index_bytes()), reused as is."""
    from fashion_edge import ann
    if not ann.available() or len(vectors) == 0:
        return Exact(vectors)
    if approximate is None:
        approximate = len(vectors) >= APPROXIMATE_FROM
    if not approximate:
        return ann.Flat(vectors)
    return ann.Approximate(vectors, ann_bytes)


def index_bytes(vectors):
    """The serialized approximate index a catalogue stores, or None where none is used."""
    from fashion_edge import ann
    if len(vectors) < APPROXIMATE_FROM or not ann.available():
        return None
    return ann.Approximate(vectors).to_bytes()
