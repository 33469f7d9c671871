"""Teach an exported model which garments are none of its classes, by prototypes of its embeddings.

    python -m export.unknown_prototypes fashion_edge/models/fashion-cnn.onnx \\
        --photos ../shared/data/product-photos-train --photos ../shared/data/clothing-photos-train

Each folder of each photo set becomes one prototype: the mean of its photos' embeddings, as the
runtime computes them (garments on a person cut out first). So does each class of Fashion-MNIST's
training images. A folder that the set's README maps to no class (hats, socks, shorts, skirts)
gives an out-of-class prototype. The runtime answers "unknown" for a garment whose embedding is
nearer an out-of-class prototype than any other (fashion_edge.model.Model.out_of_class).

The prototypes go into the file's metadata (`unknown_prototypes`), written atomically; the
weights are untouched, so every other answer stays as it was.
"""
import argparse
import sys

import numpy as np

from export.to_onnx import write_metadata
from fashion_edge import dataset, files, photos
from fashion_edge.classifier import Classifier, unit
from fashion_edge.model import MAX_VIEWS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="an .onnx file written by export.to_onnx; its metadata gains the prototypes")
    p.add_argument("--photos", action="append", required=True,
                   help="a folder-per-class photo set whose README maps each folder to its classes, [] for none (repeatable)")
    p.add_argument("--fashion-mnist", type=int, default=20000, help="training images whose classes give prototypes too")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: searched)")
    p.add_argument("--views", type=int, default=MAX_VIEWS, help="views of each photo its embedding averages")
    p.add_argument("--limit", type=int, help="only the first N photos of each folder (quick runs)")
    return p.parse_args(argv)


def photo_prototypes(clf, folder, mapping, limit=None):
    """([garment prototypes], [out-of-class prototypes]) of a folder-per-class photo set: its folders' mean embeddings."""
    garment, out_of_class = [], []
    for name, ids in sorted(mapping.items()):
        paths = photos.list_photos(folder, {name: ids})[:limit]
        rows = [e for _, _, p, e in clf.embedded_results([path for path, _ in paths]) if p is not None]
        if not rows:
            sys.exit(f"error: {folder}/{name}: no readable photo")
        (garment if ids else out_of_class).append(unit(np.mean(rows, 0)))
        print(f"{folder}/{name}: {len(rows)} photos, {'classes ' + str(ids) if ids else 'out of class'}", file=sys.stderr)
    return garment, out_of_class


def class_prototypes(model, count, data_dir=None):
    """The mean embedding of each class among the first `count` Fashion-MNIST training images, one view each."""
    images, labels = dataset.load("train", data_dir)
    pixels, labels = (images[:count].astype(np.float32) / 255)[:, None], labels[:count]
    rows = np.concatenate([model.run(pixels[i:i + 1000])[1] for i in range(0, len(pixels), 1000)])
    rows = unit(rows - model.embedding_mean)
    return [unit(rows[labels == c].mean(0)) for c in np.unique(labels)]


def with_this_step(recipe, args):
    """The model's recipe with this command as its last step, in place of any earlier run of it."""
    step = "python -m export.unknown_prototypes OUT " + " ".join(f"--photos {p}" for p in args.photos)
    step += f" --fashion-mnist {args.fashion_mnist} --views {args.views}" + (f" --limit {args.limit}" if args.limit else "")
    earlier = recipe.split("; python -m export.unknown_prototypes")[0]
    return f"{earlier}; {step}" if earlier else step


def main(argv=None):
    args = parse_args(argv)
    try:
        mappings = [photos.read_mapping(folder) for folder in args.photos]
    except photos.PhotoSetError as e:
        sys.exit(f"error: {e}")
    if not any(ids == [] for mapping in mappings for ids in mapping.values()):
        sys.exit("error: no --photos folder is mapped to no class (such as hats or socks); nothing to learn 'unknown' from")
    clf = Classifier(args.model, views=args.views)
    garment, out_of_class = class_prototypes(clf.model, args.fashion_mnist, args.data_dir), []
    for folder, mapping in zip(args.photos, mappings):
        more = photo_prototypes(clf, folder, mapping, args.limit)
        garment, out_of_class = garment + more[0], out_of_class + more[1]
    rounded = lambda rows: [[round(float(v), 4) for v in row] for row in rows]
    meta = dict(clf.model.metadata, recipe=with_this_step(clf.model.metadata.get("recipe", ""), args),
                unknown_prototypes={"garment": rounded(garment), "out_of_class": rounded(out_of_class)})
    with files.replacing(args.model) as tmp:
        write_metadata(args.model, meta, output=tmp)
    print(f"wrote {len(garment)} garment and {len(out_of_class)} out-of-class prototypes into {args.model}", file=sys.stderr)


if __name__ == "__main__":
    main()
