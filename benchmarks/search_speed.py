"""Look-alike search speed: p50 latency of one query on one thread, recall@10 and index memory.

    OMP_NUM_THREADS=1 python benchmarks/search_speed.py --sizes 100000,1000000

The catalogue is synthetic but shaped like a real one: unit float16 vectors drawn around
centres that are real embeddings (the Fashion-MNIST test images through the shipped model),
so that they cluster as garments do. Engines: numpy's exact scan, faiss's exact flat float16
index, and the approximate IVF,SQ6 index that search.py uses from 200,000 items (ann.py).
Recall@10 is the share of the exact top 10 that an engine finds.

The memory of a real catalogue: a file of that size written by Catalog.save() (synthetic paths
like shop/photos/0001234.jpg), then opened by a fresh process that runs the queries through
Catalog.search(), as `similar` does; its peak and final resident memory, and how much of that
is the process's own (anonymous) memory rather than pages of the memory-mapped file.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fashion_edge import ann, cpu, dataset, search
from fashion_edge.catalog import Catalog
from fashion_edge.classifier import Classifier, unit

QUERIES = 200
SPREAD = 0.35  # length of the noise around a centre: cosine to it about 0.94, as a class's photos are


def centres():
    clf = Classifier(views=1, people=False)
    images = dataset.load("test")[0].astype(np.float32)[:, None] / 255
    return unit(np.concatenate([clf.model.run(images[i:i + 500])[1] for i in range(0, len(images), 500)]))


def catalogue(size, around, rng):
    """float16 unit vectors [size, D] around random centres."""
    out = np.empty((size, around.shape[1]), np.float16)
    for i in range(0, size, 100_000):
        n = min(100_000, size - i)
        noise = rng.standard_normal((n, around.shape[1]), np.float32) * (SPREAD / np.sqrt(around.shape[1]))
        out[i:i + n] = unit(around[rng.integers(0, len(around), n)] + noise)
    return out


def p50_ms(engine, queries):
    times = []
    for q in queries:
        t = time.perf_counter()
        engine.search(q[None], 10)
        times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times)), 3)


def recall(engine, queries, truth):
    found = engine.search(queries, 10)[1]
    return round(float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])), 4)


def measure(size, around, rng):
    vectors = catalogue(size, around, rng)
    queries = catalogue(QUERIES, around, rng).astype(np.float32)
    exact = search.Exact(vectors)
    truth = exact.search(queries, 10)[1]
    row = {"items": size, "exact_numpy": {"p50_ms": p50_ms(exact, queries), "memory_mb": exact.matrix.nbytes / 1e6}}
    del exact
    if ann.available():
        flat = ann.Flat(vectors)
        row["exact_faiss_flat_fp16"] = {"p50_ms": p50_ms(flat, queries), "recall_at_10": recall(flat, queries, truth),
                                        "memory_mb": size * vectors.shape[1] * 2 / 1e6}
        del flat
        t = time.perf_counter()
        approx = ann.Approximate(vectors)
        built = time.perf_counter() - t
        row["approximate_ivf_sq6"] = {"p50_ms": p50_ms(approx, queries), "recall_at_10": recall(approx, queries, truth),
                                      "memory_mb": len(approx.to_bytes()) / 1e6, "build_s": round(built, 1),
                                      "nprobe": ann.NPROBE}
        del approx
    row["catalogue_process"] = catalogue_memory(vectors, queries)
    return row


OPEN_AND_SEARCH = """
import json, sys, numpy as np
from fashion_edge.catalog import Catalog
def memory():
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(status[k].split()[0]) // 1024 for k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}
before = memory()
catalog = Catalog.open(sys.argv[1])
for query in np.load(sys.argv[2]):
    catalog.search(query, 10)
print(json.dumps({"before_opening_mb": before["VmRSS"], **{k + "_mb": v for k, v in memory().items()}}))
"""


def catalogue_memory(vectors, queries):
    """Resident memory (MB) of a fresh process that opens a catalogue of these vectors and runs
    the queries: the peak, the end, and the part that is its own memory, not the mapped file."""
    n = len(vectors)
    paths = b"".join(b"shop/photos/%07d.jpg\0" % i for i in range(n))
    columns = {"vectors": vectors, "paths": np.frombuffer(paths, np.uint8), "labels": np.zeros(n, np.uint16),
               "boxes": np.tile(np.array([10, 20, 300, 400], np.int32), (n, 1)),
               "stamps": np.tile(np.array([123456, 1_700_000_000_000_000_000], np.int64), (n, 1))}
    with tempfile.TemporaryDirectory() as folder:
        catalog = Catalog(Path(folder) / "shop.npz", "synthetic", 1, ["Shirt"], columns)
        catalog.save()
        np.save(Path(folder) / "queries.npy", queries)
        child = subprocess.run([sys.executable, "-c", OPEN_AND_SEARCH, catalog.path, Path(folder) / "queries.npy"],
                               capture_output=True, text=True, check=True)
        return {"file_mb": round(catalog.path.stat().st_size / 1e6), **json.loads(child.stdout)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="catalogue sizes, comma-separated")
    args = parser.parse_args()
    if ann.available():
        ann.faiss().omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    around = centres()
    rows = [measure(int(s), around, rng) for s in args.sizes.split(",")]
    print(json.dumps({"cpu": cpu.summary(), "results": rows}, indent=1))


if __name__ == "__main__":
    main()
