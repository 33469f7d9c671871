"""A catalogue of photos for look-alike search: each photo's embedding, label and box.

    from fashion_edge import Catalog, Classifier
    clf = Classifier()
    catalog = Catalog.open_or_create("shop.npz", clf)
    for path, error in catalog.update(clf, ["a.jpg", "b.jpg"]):  # images.expand() reads folders
        ...
    for query, hits in catalog.similar(clf, ["query.jpg"], k=5):
        print(query, [(h.path, h.similarity) for h in hits])

One .npz file: unit-length float16 embeddings (512 bytes a photo) and a JSON header with each
photo's path, size and modification time, label and box, the views and the identity of the
model that made them (embeddings of another model mean nothing here). Loaded without pickle,
so a catalogue from elsewhere cannot run code. Written whole or not at all (files.replacing).
"""
import hashlib
import json
import os
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fashion_edge import files, images, search

FORMAT = 1


class CatalogError(Exception):
    """The catalogue is missing, unreadable or made by another model; the message is one line."""


@dataclass
class Hit:
    path: str
    similarity: float          # cosine similarity, 1 for the same image
    label: str                 # the catalogued photo's label, as classify gave it
    box: list | None           # [x, y, w, h] of its garment, as classify gave it

    def to_dict(self):
        return asdict(self)


def model_identity(model_path):
    """sha256 of the model file's bytes: the same weights give the same embeddings."""
    return hashlib.sha256(Path(model_path).read_bytes()).hexdigest()


def stamp(path):
    """(size, mtime in ns) of a file, or None where it is no file on disk (standard input)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_size, st.st_mtime_ns


class Catalog:
    def __init__(self, path, model_sha, views, items=(), vectors=None, ann=None):
        self.path, self.model_sha, self.views = Path(path), model_sha, views
        self.items = list(items)  # [{"path", "size", "mtime", "label", "box"}], row by row
        self.rows = {item["path"]: i for i, item in enumerate(self.items)}
        self.vectors = np.zeros((0, 0), np.float16) if vectors is None else vectors
        self.pending = []  # (row or None, vector): added since the matrix was last stacked
        self.ann, self.engines = ann, {}

    def __len__(self):
        return len(self.items)

    @classmethod
    def create(cls, path, clf, views=None):
        return cls(path, model_identity(clf.model.path), views or clf.views)

    @classmethod
    def open(cls, path, clf=None):
        """The catalogue at path; with a Classifier, refused unless its model made the catalogue."""
        header, vectors, ann = read(path)
        catalog = cls(path, header["model"], header["views"], header["items"], vectors, ann)
        if clf is not None and model_identity(clf.model.path) != catalog.model_sha:
            raise CatalogError(f"{path}: made by another model than {Path(clf.model.path).name}; index the photos "
                               "again with this model into a new catalogue, or pass the catalogue's --model")
        return catalog

    @classmethod
    def open_or_create(cls, path, clf, views=None):
        return cls.open(path, clf) if Path(path).exists() else cls.create(path, clf, views)

    def stale(self, paths):
        """The paths that are new or changed since catalogued: those update() embeds."""
        return [p for p in paths if not self.unchanged(p)]

    def unchanged(self, path):
        """True when path is catalogued and its size and modification time are as they were."""
        row = self.rows.get(str(path))
        return row is not None and stamp(path) == (self.items[row]["size"], self.items[row]["mtime"])

    def add(self, path, embedding, prediction):
        """Catalogue (or re-catalogue) one photo with its unit embedding and Prediction."""
        size, mtime = stamp(path) or (None, None)
        item = {"path": str(path), "size": size, "mtime": mtime, "label": prediction.label, "box": prediction.box}
        row = self.rows.get(str(path))
        if row is None:
            row = self.rows[str(path)] = len(self.items)
            self.items.append(item)
        else:
            self.items[row] = item
        self.pending.append((row, np.asarray(embedding, np.float16)))
        self.engines, self.ann = {}, None

    def matrix(self):
        """The float16 embeddings [N, D], with what was added since stacked in."""
        if self.pending:
            dim = len(self.pending[0][1])
            grown = np.zeros((len(self.items), dim), np.float16)
            if len(self.vectors):
                grown[:len(self.vectors)] = self.vectors
            for row, vector in self.pending:
                grown[row] = vector
            self.vectors, self.pending = grown, []
        return self.vectors

    def save(self, final=True):
        """Write the catalogue atomically. A final save of a large one also stores its search index
        (see search.py), so that no query has to build it; periodic saves skip that cost."""
        vectors = self.matrix()
        if final and self.ann is None:
            self.ann = search.index_bytes(vectors)
        header = {"format": FORMAT, "model": self.model_sha, "views": self.views, "items": self.items}
        arrays = {"vectors": vectors, "header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
        if self.ann is not None:
            arrays["ann"] = self.ann
        with files.replacing(self.path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def search(self, queries, k=5, labels=None):
        """The k nearest items of each unit query [Q, D] (or [D]): a list of Hit lists, best first.
        labels: one label per query to keep only items of that label (--same-label)."""
        queries = np.atleast_2d(np.asarray(queries, np.float32))
        if labels is None:
            rows, engine = self.engine(None)
            return [self.hits(rows, s, i) for s, i in zip(*engine.search(queries, k))]
        found = []
        for query, label in zip(queries, labels):
            rows, engine = self.engine(label)
            scores, ids = engine.search(query[None], k)
            found.append(self.hits(rows, scores[0], ids[0]))
        return found

    def engine(self, label):
        """(rows or None for all, search engine) over every item (label None) or one label's, built once."""
        if label not in self.engines:
            vectors = self.matrix()
            if label is None:
                self.engines[None] = (None, search.engine(vectors, self.ann))
            else:
                rows = np.array([i for i, item in enumerate(self.items) if item["label"] == label], np.int64)
                self.engines[label] = (rows, search.engine(vectors[rows]))
        return self.engines[label]

    def hits(self, rows, scores, ids):
        ids = ids[ids >= 0]  # an approximate index may find fewer than k
        items = [self.items[i] for i in (ids if rows is None else rows[ids])]
        return [Hit(item["path"], round(float(s), 4), item["label"], item["box"]) for s, item in zip(scores, items)]

    def update(self, embedder, paths, batch_size=64, save_every=30.0, progress=None):
        """Embed each path that is new or changed; yields (path, ImageError or None) for those, in
        order. embedder: a Classifier, or anything with its embedded_results() (distributed.py).

        Saves every save_every seconds, at the end, and when stopped (Ctrl-C included), so that
        a run stopped halfway keeps what it had embedded; the same command then goes on."""
        todo = self.stale(paths)
        last = time.monotonic()
        try:
            for done, (path, prepared, prediction, embedding) in enumerate(embedder.embedded_results(todo, batch_size), 1):
                if prediction is not None:
                    self.add(path, embedding, prediction)
                if progress:
                    progress(done, len(todo))
                if time.monotonic() - last >= save_every:
                    self.save(final=False)
                    last = time.monotonic()
                yield path, None if prediction is not None else prepared
        except BaseException:  # Ctrl-C, SIGTERM, a closed generator: keep what is done, fast
            self.save(final=False)
            raise
        self.save()

    def similar(self, clf, queries, k=5, same_label=False, batch_size=64):
        """Yields (query, [Hit] or ImageError) for each query image (path or array), in order."""
        for query, prepared, prediction, embedding in clf.embedded_results(queries, batch_size):
            if prediction is None:
                yield query, prepared
            else:
                yield query, self.search(embedding, k, [prediction.label] if same_label else None)[0]


def read(path):
    """(header dict, float16 vectors [N, D], serialized search index or None) of a catalogue file."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such catalogue; make one with: fashion-edge index PHOTOS --output {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes())
            vectors = npz["vectors"]
            ann = npz["ann"] if "ann" in npz.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise CatalogError(f"{path}: not a fashion-edge catalogue ({type(e).__name__}); make one with "
                           "fashion-edge index PHOTOS --output CATALOG") from None
    if header.get("format") != FORMAT or len(header.get("items", ())) != len(vectors):
        raise CatalogError(f"{path}: a catalogue of another format or a damaged one; index the photos again")
    return header, vectors, ann
