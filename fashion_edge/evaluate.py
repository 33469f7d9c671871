"""Accuracy of a Classifier on the Fashion-MNIST test set or on a folder-per-class photo set."""
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
