"""Accuracy of a Classifier on the Fashion-MNIST test set, a folder-per-class photo set, or photos of people."""
from pathlib import Path

import numpy as np

from fashion_edge import dataset, photos
from fashion_edge.images import ImageError
from fashion_edge.report import confusion_matrix


def on_test_set(clf, data_dir=None, limit=None, batch_size=64, progress=None):
    """Top-1 accuracy of the classifier on the 10,000 test images (already in the input convention).

    At ten views each image in a batch holds about 1.2 MB of activations: batches of 1,000
    peaked at 1.6 GB, more than a small Pi has, and ran no faster.
    progress(done, total), if given, is called after each batch.
    """
    test_images, labels = dataset.load("test", data_dir)
    test_images, labels = test_images[:limit], labels[:limit]
    pixels = (test_images.astype(np.float32) / 255)[:, None]
    preds = []
    for i in range(0, len(pixels), batch_size):
        preds.append(clf.probabilities(pixels[i:i + batch_size]).argmax(1))
        if progress:
            progress(min(i + batch_size, len(pixels)), len(pixels))
    preds = np.concatenate(preds)
    per_class = {clf.labels[c]: float((preds[labels == c] == c).mean()) for c in range(len(clf.labels)) if (labels == c).any()}
    return {"set": "fashion-mnist-test", "n": len(labels), "views": clf.views, "accuracy": float((preds == labels).mean()),
            "per_class": per_class, "confusion": confusion_matrix(labels, preds).tolist()}, labels, preds


def on_photos(clf, folder, mapping_file=None, batch_size=64, progress=None):
    """Fine and coarse accuracy on in-distribution photos, and the 'unknown' rate on the others.
    progress(done, total), if given, is called after each photo."""
    mapping = photos.read_mapping(folder, mapping_file)
    items = photos.list_photos(folder, mapping)
    ids_of = {str(path): ids for path, ids in items}
    rows = []
    for path, result in clf.predict_paths([p for p, _ in items], batch_size):
        if progress:
            progress(len(rows) + 1, len(items))
        ids = ids_of[str(path)]
        if isinstance(result, ImageError):
            rows.append({"path": str(path), "folder": path.parent.name, "error": str(result)})
            continue
        cid = result.class_id
        rows.append({"path": str(path), "folder": path.parent.name, "label": result.label, "confidence": result.confidence,
                     "fine": cid in ids, "coarse": cid is not None and photos.coarse_group(cid) in {photos.coarse_group(i) for i in ids},
                     "unknown": cid is None, "in_distribution": bool(ids)})
    inside = [r for r in rows if "error" not in r and r["in_distribution"]]
    outside = [r for r in rows if "error" not in r and not r["in_distribution"]]
    per_folder = {}
    for name, ids in sorted(mapping.items()):
        rs = [r for r in rows if r["folder"] == name and "error" not in r]
        key = "fine" if ids else "unknown"
        per_folder[name] = {"n": len(rs), "measure": key, "value": float(np.mean([r[key] for r in rs])) if rs else None}
    return {"set": str(folder), "n": len(rows), "errors": sum("error" in r for r in rows),
            "fine_accuracy": float(np.mean([r["fine"] for r in inside])) if inside else None,
            "coarse_accuracy": float(np.mean([r["coarse"] for r in inside])) if inside else None,
            "unknown_rate_out_of_distribution": float(np.mean([r["unknown"] for r in outside])) if outside else None,
            "unknown_rate_in_distribution": float(np.mean([r["unknown"] for r in inside])) if inside else None,
            "per_folder": per_folder}, rows


def on_people(clf, folder, min_area=0.02, progress=None):
    """On photos of people, each listing its garments ({folder}/labels.json beside {folder}/photos/,
    as street-photos has): how often the largest garment's coarse class is right, the share of
    garments over min_area of the photo that are found (a reported box with IoU >= 0.3 and the
    coarse class right), and the share of reported garments that match a labelled one."""
    labels = photos.read_people_labels(folder)
    paths = [Path(folder) / "photos" / name for name in labels]
    rows = []
    for path, result in clf.predict_paths(paths):
        if progress:
            progress(len(rows) + 1, len(paths))
        truth = labels[path.name]
        if isinstance(result, ImageError):
            rows.append({"path": str(path), "error": str(result)})
            continue
        reported = result.garments
        big = [g for g in truth["garments"] if g["area"] > min_area]
        rows.append({"path": str(path), "label": result.label, "largest_right": right(result.class_id, truth["main"]),
                     "found": sum(any(matches(r, g) for r in reported) for g in big), "garments": len(big),
                     "matching": sum(any(matches(r, g) for g in truth["garments"]) for r in reported),
                     "reported": len(reported)})
    ok = [r for r in rows if "error" not in r]
    total = lambda key: sum(r[key] for r in ok)
    return {"set": str(folder), "n": len(rows), "errors": len(rows) - len(ok),
            "largest_coarse_accuracy": float(np.mean([r["largest_right"] for r in ok])) if ok else None,
            "garments_found": total("found") / max(total("garments"), 1),
            "reported_matching": total("matching") / max(total("reported"), 1),
            "garments_per_photo": total("reported") / max(len(ok), 1)}, rows


def right(class_id, garment):
    """Whether an answer is right for a labelled garment at the coarse level; unknown for one of no class."""
    if not garment["class_ids"]:
        return class_id is None
    return class_id is not None and photos.coarse_group(class_id) in {photos.coarse_group(i) for i in garment["class_ids"]}


def matches(reported, garment):
    return iou(reported["box"], garment["box"]) >= 0.3 and right(reported["class_id"], garment)


def iou(a, b):
    """Intersection over union of two [x, y, w, h] boxes."""
    w = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    h = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)
