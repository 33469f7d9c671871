"""Look-alike search speed: p50 latency of one query on one thread, recall@10 and index memory.

    OMP_NUM_THREADS=1 python benchmarks/search_speed.py --sizes 100000,1000000

The catalogue is synthetic but shaped like a real one: unit float16 vectors drawn around
centres that are real embeddings (the Fashion-MNIST test images through the shipped model),
so that they cluster as garments do. Engines: numpy's exact scan, faiss's exact flat float16
index, and the approximate IVF,SQ8 index that search.py uses from 200,000 items (ann.py).
Recall@10 is the share of the exact top 10 that an engine finds.
"""
import argparse
import json
import time

import numpy as np

from fashion_edge import ann, cpu, dataset, search
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
        row["approximate_ivf_sq8"] = {"p50_ms": p50_ms(approx, queries), "recall_at_10": recall(approx, queries, truth),
                                      "memory_mb": len(approx.to_bytes()) / 1e6, "build_s": round(built, 1),
                                      "nprobe": ann.NPROBE}
    return row


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
