"""A catalogue of photos for look-alike search: each photo's embedding, label and box.

    from fashion_edge import Catalog, Classifier
    clf = Classifier()
    catalog = Catalog.open_or_create("shop.npz", clf)
    for path, error in catalog.update(clf, ["a.jpg", "b.jpg"]):  # images.expand() reads folders
        ...
    for query, hits in catalog.similar(clf, ["query.jpg"], k=5):
        print(query, [(h.path, h.similarity) for h in hits])

One uncompressed .npz file of columns, a row a photo: unit-length float16 embeddings (512
bytes), paths (relative to the catalogue's folder, so it answers from any working folder and
moves with its photos), label codes, boxes, sizes and modification times; and a JSON header
with the label names, the views and the identity of the models that made them (embeddings of
other models mean nothing here). Columns, not a record a photo, keep a catalogue of a million
photos to tens of megabytes beside its vectors, and the vectors are memory-mapped: a search
reads only the rows it scores. Loaded without pickle, so a catalogue from elsewhere cannot run
code. Written whole or not at all (files.replacing).
"""
import hashlib
import json
import math
import mmap
import os
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fashion_edge import files, garments, search

FORMAT = 2
NO_BOX = (-1, -1, -1, -1)


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


def model_identity(clf):
    """sha256 of the model file's bytes, and of the garment-region network's and the settings that
    find a person's garments where the Classifier looks for people: the same give the same embeddings."""
    digest = hashlib.sha256(Path(clf.model.path).read_bytes())
    if clf.regions is not None:
        digest.update(Path(clf.regions.path).read_bytes())
        digest.update(repr(garments.settings()).encode())
    return digest.hexdigest()


def stamp(path):
    """(size, mtime in ns) of a file, or None where it is no file on disk (standard input)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_size, st.st_mtime_ns


def empty_columns():
    return {"vectors": np.zeros((0, 0), np.float16), "paths": np.zeros(0, np.uint8),
            "labels": np.zeros(0, np.uint16), "boxes": np.zeros((0, 4), np.int32), "stamps": np.zeros((0, 2), np.int64)}


class Catalog:
    def __init__(self, path, model_sha, views, labels=(), columns=None, ann=None):
        self.path, self.model_sha, self.views = Path(path), model_sha, views
        self.folder = self.path.absolute().parent
        self.labels = list(labels)  # label names; the labels column holds their positions
        self.columns = columns or empty_columns()
        self.ends = np.flatnonzero(self.columns["paths"] == 0)  # each path ends with a NUL byte
        self.rows = None  # {stored path: row}, built when an update needs it
        self.pending = {}  # row: (stored path, vector, label code, box, stamp), added since stacked
        self.ann, self.engines = ann, {}

    def __len__(self):
        return len(self.ends) if self.rows is None else len(self.rows)  # rows has the pending ones too

    @classmethod
    def create(cls, path, clf, views=None):
        return cls(path, model_identity(clf), views or clf.views)

    @classmethod
    def open(cls, path, clf=None):
        """The catalogue at path; with a Classifier, refused unless its model made the catalogue."""
        header, columns, ann = read(path)
        catalog = cls(path, header["model"], header["views"], header["labels"], columns, ann)
        if clf is not None and model_identity(clf) != catalog.model_sha:
            raise CatalogError(f"{path}: made by another model than {Path(clf.model.path).name} or another garment-region "
                               "network; index the photos again into a new catalogue, or pass the catalogue's --model")
        return catalog

    @classmethod
    def open_or_create(cls, path, clf, views=None):
        return cls.open(path, clf) if Path(path).exists() else cls.create(path, clf, views)

    def key(self, path):
        """How a photo's path is stored: relative to the catalogue's folder (standard input as is)."""
        return os.path.relpath(os.path.abspath(path), self.folder) if stamp(path) is not None else str(path)

    def shown(self, key):
        """A stored path as the user reaches it: relative to the working folder where under it, else absolute."""
        if key == "-":
            return key
        full = os.path.normpath(self.folder / key)
        relative = os.path.relpath(full)
        return full if relative.startswith("..") else relative

    def record(self, row):
        """(stored path, label code, box, (size, mtime)) of a row, from what is pending or from the
        columns, without stacking them: that copies every column, and index --json asks each photo."""
        if row in self.pending:
            key, _, label, box, when = self.pending[row]
            return key, label, tuple(box), tuple(when)
        start = self.ends[row - 1] + 1 if row else 0
        key = self.columns["paths"][start:self.ends[row]].tobytes().decode()
        return (key, int(self.columns["labels"][row]), tuple(self.columns["boxes"][row].tolist()),
                tuple(self.columns["stamps"][row].tolist()))

    def key_rows(self):
        """{stored path: row} of every photo, those pending included; built when first needed."""
        if self.rows is None:  # nothing is pending before the first add(), which builds it
            stored = self.columns["paths"].tobytes().split(b"\0")[:-1]
            self.rows = {key.decode(): row for row, key in enumerate(stored)}
        return self.rows

    def row(self, path):
        """The row of a catalogued photo, or None."""
        return self.key_rows().get(self.key(path))

    def item(self, row):
        """{"path", "label", "box"} of a row, as classify gave them."""
        key, label, box, _ = self.record(row)
        return {"path": self.shown(key), "label": self.labels[label], "box": None if box == NO_BOX else list(box)}

    def stale(self, paths):
        """The paths that are new or changed since catalogued: those update() embeds."""
        return [p for p in paths if not self.unchanged(p)]

    def unchanged(self, path):
        """True when path is catalogued and its size and modification time are as they were."""
        row = self.row(path)
        return row is not None and stamp(path) == self.record(row)[3]

    def add(self, path, embedding, prediction):
        """Catalogue (or re-catalogue) one photo with its unit embedding and Prediction."""
        rows, key = self.key_rows(), self.key(path)
        row = rows.setdefault(key, len(rows))
        if prediction.label not in self.labels:
            self.labels.append(prediction.label)
        self.pending[row] = (key, np.asarray(embedding, np.float16), self.labels.index(prediction.label),
                             prediction.box or NO_BOX, stamp(path) or (-1, -1))
        self.engines, self.ann = {}, None

    def stack(self):
        """Write what was added since into the columns: new rows grow them, the rest in place."""
        if not self.pending:
            return
        old, pending, self.pending = len(self.ends), self.pending, {}
        n, dim = old + sum(row >= old for row in pending), len(next(iter(pending.values()))[1])
        grown = {}
        for name in ("vectors", "labels", "boxes", "stamps"):
            column = self.columns[name]
            grown[name] = np.zeros((n, dim) if name == "vectors" else (n, *column.shape[1:]), column.dtype)
            if old:
                grown[name][:old] = column
        for row, (key, vector, label, box, when) in pending.items():
            grown["vectors"][row], grown["labels"][row], grown["boxes"][row], grown["stamps"][row] = vector, label, box, when
        added = b"".join(pending[row][0].encode() + b"\0" for row in range(old, n))
        grown["paths"] = np.concatenate([self.columns["paths"], np.frombuffer(added, np.uint8)])
        self.columns, self.ends = grown, np.flatnonzero(grown["paths"] == 0)

    def matrix(self):
        """The float16 embeddings [N, D], with what was added since stacked in."""
        self.stack()
        return self.columns["vectors"]

    def save(self, final=True):
        """Write the catalogue atomically. A final save of a large one also stores its search index
        (see search.py), so that no query has to build it; periodic saves skip that cost."""
        vectors = self.matrix()
        if final and self.ann is None:
            in_use = self.engines.get(None, (None, None))[1]
            self.ann = in_use.to_bytes() if hasattr(in_use, "to_bytes") else search.index_bytes(vectors)
        header = {"format": FORMAT, "model": self.model_sha, "views": self.views, "labels": self.labels}
        arrays = dict(self.columns, header=np.frombuffer(json.dumps(header).encode(), np.uint8))
        if self.ann is not None:
            arrays["ann"] = self.ann
        with files.replacing(self.path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)  # uncompressed, so that read() can memory-map the vectors

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
                self.ann = None  # the engine holds the index now; save() takes it from there
            else:
                code = self.labels.index(label) if label in self.labels else -1
                rows = np.flatnonzero(self.columns["labels"] == code)
                self.engines[label] = (rows, search.engine(vectors[rows]))
        return self.engines[label]

    def hits(self, rows, scores, ids):
        ids = ids[ids >= 0]  # an approximate index may find fewer than k
        items = [self.item(i) for i in (ids if rows is None else rows[ids])]
        return [Hit(item["path"], round(float(s), 4), item["label"], item["box"]) for s, item in zip(scores, items)]
        self.save()

    def update(self, embedder, paths, batch_size=64, save_every=30.0, progress=None):
        """Embed each path that is new or changed; yields (path, ImageError or None) for those, in
        order. embedder: a Classifier, or anything with its embedded_results() (distributed.py).

        Saves every save_every seconds, at the end, and when stopped (Ctrl-C included), so that
        a run stopped halfway keeps what it had embedded; the same command then goes on."""
        todo = self.stale(paths)
        if not todo and self.path.exists() and (self.ann is not None or len(self) < search.APPROXIMATE_FROM):
            return  # nothing new, and no search index left to store by an interrupted run
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
    """(header dict, columns, serialized search index or None) of a catalogue file; the vectors
    memory-mapped."""
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such catalogue; make one with: fashion-edge index PHOTOS --output {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes())
            columns = {name: npz[name] for name in ("paths", "labels", "boxes", "stamps")}
            ann = mapped(path, "ann", mmap.MADV_SEQUENTIAL) if "ann" in npz.files else None
        columns["vectors"] = mapped(path, "vectors", mmap.MADV_RANDOM)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise CatalogError(f"{path}: not a fashion-edge catalogue ({type(e).__name__}); make one with "
                           "fashion-edge index PHOTOS --output CATALOG") from None
    if header.get("format") != FORMAT or not (len(columns["vectors"]) == len(columns["labels"])
                                              == np.count_nonzero(columns["paths"] == 0)):
        raise CatalogError(f"{path}: a catalogue of another format or a damaged one; index the photos again")
    return header, columns, ann


def mapped(path, name, advice):
    """The array `name` of a .npz, memory-mapped read-only where it is stored uncompressed (as
    save() writes it), else read into memory. advice: the mmap.MADV_* of how it will be read
    (random rows: no read-ahead, which would page in the whole file a query at a time)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the zip member's local header, then its name and extra field
        if info.compress_type != zipfile.ZIP_STORED or local[:4] != b"PK\x03\x04":
            with np.load(path, allow_pickle=False) as npz:
                return npz[name]
        f.seek(info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little"))
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject or fortran:
            raise ValueError(f"{name} is not a plain array")
        if 0 in shape:  # nothing to map
            return np.zeros(shape, dtype)
        start, whole = f.tell(), mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(whole, "madvise"):
        whole.madvise(advice)
    return np.frombuffer(whole, dtype, math.prod(shape), start).reshape(shape)
