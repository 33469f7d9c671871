"""Accuracy tables, confusion-matrix pictures and the files classify writes beside its results,
drawn with OpenCV so the runtime needs no plotting library."""
import os
from pathlib import Path

import cv2
import numpy as np

from fashion_edge import files


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
    if not ok:
        raise OSError(f"OpenCV could not encode {path} as {ext}")
    files.write_bytes(path, buf.tobytes())


def numbered_name(index, path):
    """'0003-shirt' for the third input (index 2): unique where inputs share a file name (a/b.jpg,
    c/b.jpg), and in the order of classify's output lines."""
    stem = "stdin" if str(path) == "-" else Path(path).stem
    return f"{index + 1:04d}-{stem}"


# Formats OpenCV writes; an annotated copy of anything else (HEIC, GIF, standard input) is a JPEG.
WRITABLE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}
ANNOTATION_KNOWN, ANNOTATION_UNKNOWN = (0, 200, 0), (0, 165, 255)  # BGR: green, orange


def annotated_name(index, path):
    suffix = Path(str(path)).suffix.lower()
    return numbered_name(index, path) + (suffix if suffix in WRITABLE_SUFFIXES else ".jpg")


def short_answer(prediction):
    """'Shirt 0.95', 'unknown (closest: Dress 0.19)' or 'unknown (no garment found)'."""
    if prediction.class_id is not None:
        return f"{prediction.label} {prediction.confidence:.2f}"
    if prediction.box is None:
        return "unknown (no garment found)"
    best = prediction.top_k[0]
    return f"unknown (closest: {best['label']} {best['confidence']:.2f})"


def garment_answer(garment):
    """'Trouser 0.97' or 'unknown 0.40' for one of Prediction.garments."""
    return f"{garment['label']} {garment['confidence']:.2f}"


def annotate(image, prediction):
    """A copy of the image with each garment's box and answer drawn on, sized to the image."""
    canvas = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = max(canvas.shape[:2]) / 800  # a phone photo of 4000 pixels gets lines it is seen with
    thickness, font_scale = max(1, round(2 * scale)), max(0.45, 0.7 * scale)
    if len(prediction.garments) > 1:  # a person's garments, each named on its box
        marks = [(g["box"], garment_answer(g), g["class_id"] is not None) for g in reversed(prediction.garments)]
    else:
        marks = [(prediction.box, short_answer(prediction), prediction.class_id is not None)]
    for box, text, known in marks:
        mark(canvas, box, text, ANNOTATION_KNOWN if known else ANNOTATION_UNKNOWN, thickness, font_scale)
    return canvas


def mark(canvas, box, text, colour, thickness, font_scale):
    """Draw a box (or none) and its text on a filled label above it, or inside where there is no room."""
    x, y = 0, 0
    if box:
        x, y, w, h = box
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thickness)
    font = cv2.FONT_HERSHEY_SIMPLEX
    width = cv2.getTextSize(text, font, font_scale, thickness)[0][0] + 2 * thickness
    if width > canvas.shape[1]:  # the whole answer stays in view on a narrow photo
        font_scale *= canvas.shape[1] / width
        thickness = 1
    (tw, th), base = cv2.getTextSize(text, font, font_scale, thickness)
    x = min(x, max(0, canvas.shape[1] - tw - 2 * thickness))
    top = y - th - base - 2 * thickness if y >= th + base + 2 * thickness else y  # above the box where it fits
    cv2.rectangle(canvas, (x, top), (x + tw + 2 * thickness, top + th + base + 2 * thickness), colour, -1)
    cv2.putText(canvas, text, (x + thickness, top + th + thickness), font, font_scale, (0, 0, 0), thickness, cv2.LINE_AA)
