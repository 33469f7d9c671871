"""Look-alike search quality: same-class precision@5, beside a raw-pixel baseline in the same run.

    python benchmarks/search_quality.py                      # Fashion-MNIST: test queries, training index
    python benchmarks/search_quality.py --photos-train DIR --photos-dev DIR [--views 10]

Fashion-MNIST: each test image's 5 nearest training images by embedding (the model's
`embedding` output, unit length, cosine similarity); the share with the query's class. The
baseline ranks by the cosine of the raw 28x28 pixels.

Photos: each development photo's 5 nearest training photos, read as `fashion-edge index`
reads them. A hit counts when it is from the query's folder, or from a folder that the set's
README.md maps onto a shared Fashion-MNIST class (longsleeve and shirt share Shirt); a folder
that no class fits (hat, shorts, skirt) is its own class. The baseline ranks by the cosine of
the 28x28 model input, the same crop without the network. --same-label is also measured: only
items that the classifier gave the query's label.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from fashion_edge import dataset, photos
from fashion_edge.classifier import Classifier, unit

K = 5


def nearest(index, queries, k=K, chunk=1000):
    """Indices [Q, k] of the k nearest rows of unit `index` to each unit query, by inner product."""
    out = []
    for i in range(0, len(queries), chunk):
        scores = queries[i:i + chunk] @ index.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        out.append(np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, 1), 1), 1))
    return np.concatenate(out)


def fashion_mnist(clf, batch=512):
    train, train_y = dataset.load("train")
    test, test_y = dataset.load("test")

    def embed(images):
        x = (images.astype(np.float32) / 255)[:, None]
        embedding = np.concatenate([clf.model.run(x[i:i + batch], clf.views)[1] for i in range(0, len(x), batch)])
        return unit(embedding - clf.model.embedding_mean)  # as Classifier.outputs() does

    def raw(images):
        return unit(images.reshape(len(images), -1).astype(np.float32))

    result = {}
    for name, fn in (("embedding", embed), ("raw_pixels", raw)):
        found = nearest(fn(train).astype(np.float16).astype(np.float32), fn(test))
        result[name] = float((train_y[found] == test_y[:, None]).mean())
    return result


def photo_set(clf, folder):
    """(paths, folder names, embeddings [N, D], raw model inputs [N, 784], labels) of a folder-per-class set."""
    mapping = photos.read_mapping(folder)
    listed = photos.list_photos(folder, mapping)
    keep = {"path": [], "folder": [], "embedding": [], "raw": [], "label": []}
    for path, prepared, prediction, embedding in clf.embedded_results([p for p, _ in listed]):
        if prediction is None:
            continue
        keep["path"].append(path)
        keep["folder"].append(Path(path).relative_to(folder).parts[0])
        keep["embedding"].append(embedding)
        keep["raw"].append((prepared.garments or [prepared])[0].pixels.ravel())
        keep["label"].append(prediction.label)
    return keep, mapping


def photo_precision(clf, train_dir, dev_dir):
    index, mapping = photo_set(clf, train_dir)
    queries, _ = photo_set(clf, dev_dir)

    def same(a, b):
        return a == b or bool(set(mapping.get(a, [])) & set(mapping.get(b, [])))

    def precision(found, match=same):
        hits = [[match(q, index["folder"][i]) for i in row] for q, row in zip(queries["folder"], found)]
        per = {}
        for q, h in zip(queries["folder"], hits):
            per.setdefault(q, []).append(np.mean(h))
        return float(np.mean(hits)), {f: round(float(np.mean(v)), 4) for f, v in sorted(per.items())}

    vectors = np.stack(index["embedding"]).astype(np.float16).astype(np.float32)
    found = nearest(vectors, np.stack(queries["embedding"]))
    emb, per_folder = precision(found)
    strict, _ = precision(found, str.__eq__)  # the query's own folder only
    raw, _ = precision(nearest(unit(np.stack(index["raw"])), unit(np.stack(queries["raw"]))))
    labels = np.array(index["label"])
    same_label = []
    for q, label in zip(queries["embedding"], queries["label"]):
        rows = np.flatnonzero(labels == label)
        same_label.append(rows[nearest(vectors[rows], q[None], min(K, len(rows)))[0]])
    return {"n_index": len(vectors), "n_queries": len(queries["path"]), "embedding": emb, "raw_pixels": raw,
            "embedding_own_folder_only": strict,
            "embedding_same_label": precision(same_label)[0], "per_folder": per_folder}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos-train", help="folder-per-class photos to index")
    parser.add_argument("--photos-dev", help="folder-per-class photos to query with")
    parser.add_argument("--views", type=int, help="views averaged per image  [default: 1 for Fashion-MNIST, 10 for photos]")
    parser.add_argument("--skip-fashion-mnist", action="store_true")
    parser.add_argument("--garments-alone", action="store_true",
                        help="treat every photo as one garment alone (Classifier(people=False)): no garment-region network")
    args = parser.parse_args()
    report = {}
    if not args.skip_fashion_mnist:
        report["fashion_mnist"] = {"views": args.views or 1, **fashion_mnist(Classifier(views=args.views or 1))}
    if args.photos_train and args.photos_dev:
        clf = Classifier(views=args.views or 10, people=not args.garments_alone)
        report["photos"] = {"views": clf.views, "garment_regions": clf.regions is not None, **photo_precision(clf, Path(args.photos_train), Path(args.photos_dev))}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
