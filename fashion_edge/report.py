"""Accuracy tables, confusion-matrix pictures and the files classify writes beside its results,
drawn with OpenCV so the runtime needs no plotting library."""
import os
from pathlib import Path

import cv2
import numpy as np


def confusion_matrix(truth, preds, n_classes=10):
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(truth), np.asarray(preds)), 1)
    return m


def save_confusion_png(truth, preds, path, labels=None, title=""):
    """Row-normalized confusion matrix (rows: truth, columns: prediction) as a PNG, written atomically."""
    m = confusion_matrix(truth, preds)
    labels = labels or [str(i) for i in range(len(m))]
    cell, left, top = 44, 110, 40
    n = len(m)
    img = np.full((top + n * cell + 100, left + n * cell + 10, 3), 255, np.uint8)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(n):
        for j in range(n):
            shade = int(255 * (1 - rows[i, j]))
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), (255, shade, shade) if i != j else (shade, 255, shade), -1)
            if m[i, j]:
                cv2.putText(img, str(m[i, j]), (x + 3, y + 27), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, labels[i][:14], (4, top + i * cell + 27), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        # Column labels run downwards below the grid so long names fit.
        text = np.full((cell, 95, 3), 255, np.uint8)
        cv2.putText(text, labels[i][:14], (2, 27), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        img[top + n * cell + 3: top + n * cell + 98, left + i * cell: left + (i + 1) * cell] = cv2.rotate(text, cv2.ROTATE_90_CLOCKWISE)
    acc = np.trace(m) / max(m.sum(), 1)
    cv2.putText(img, f"{title}  accuracy {acc:.4f}  (rows: truth, columns: predicted)", (4, 24), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    write_image_atomic(path, img)


def write_image_atomic(path, img):
    path = str(path)
    ext = os.path.splitext(path)[1] or ".png"
    ok, buf = cv2.imencode(ext, img)
    assert ok, f"OpenCV could not encode {path}"
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)


def numbered_name(index, path):
    """'0003-shirt' for the third input (index 2): unique where inputs share a file name (a/b.jpg,
    c/b.jpg), and in the order of classify's output lines."""
    stem = "stdin" if str(path) == "-" else Path(path).stem
    return f"{index + 1:04d}-{stem}"
