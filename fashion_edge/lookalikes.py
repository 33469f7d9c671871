"""`webcam --index CATALOG`: the catalogue's nearest items to what the camera sees, each frame.

The three nearest are drawn as a column of pictures beside the live view (so the window, the
browser page and a saved video show them) and listed in the frame's JSON as "similar".
"""
import collections

import cv2
import numpy as np

from fashion_edge import images

COUNT = 3
CACHED = 64  # pictures kept decoded: a catalogue's look-alikes repeat from frame to frame


class Lookalikes:
    def __init__(self, catalog):
        self.catalog = catalog
        self.pictures = collections.OrderedDict()

    def find(self, embedding):
        """The COUNT nearest catalogue items (Hits) to the frame's main garment's embedding
        (webcam.classify gives it); none in an empty frame."""
        if embedding is None or len(self.catalog) == 0:
            return []
        return self.catalog.search(embedding, COUNT)[0]

    def show(self, hits, canvas):
        """(the frame's JSON "similar" list, the canvas with their column on its right, or None)."""
        listed = [hit.to_dict() for hit in hits]
        if canvas is None:
            return listed, None
        side = canvas.shape[0] // COUNT
        column = np.full((canvas.shape[0], side, 3), 24, np.uint8)
        for i, hit in enumerate(hits):
            column[i * side:(i + 1) * side] = self.tile(hit, side)
        return listed, np.hstack([canvas, column])

    def tile(self, hit, side):
        """A side x side picture of a catalogued photo's garment with its similarity written on."""
        tile = np.full((side, side, 3), 24, np.uint8)
        picture = self.picture(hit)
        if picture is not None:
            scale = (side - 8) / max(picture.shape[:2])
            fitted = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            h, w = fitted.shape[:2]
            tile[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = fitted
        cv2.rectangle(tile, (0, side - 24), (side, side), (0, 0, 0), -1)
        cv2.putText(tile, f"{hit.similarity:.2f} {hit.label}", (4, side - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        return tile

    def picture(self, hit):
        """The catalogued photo cropped to its garment's box, decoded once; None where it is gone."""
        if hit.path not in self.pictures:
            self.pictures[hit.path] = crop(hit)
            if len(self.pictures) > CACHED:
                self.pictures.popitem(last=False)
        return self.pictures[hit.path]


def crop(hit, side=256):
    """A catalogued photo's garment as a BGR image, decoded at about `side` pixels; None where unreadable."""
    try:
        image, (fx, fy) = images.load_reduced(hit.path, side)
    except images.ImageError:
        return None
    if hit.box:  # the box is in the file's pixels, the image maybe reduced
        x, y, w, h = hit.box
        part = image[int(y / fy):int((y + h) / fy), int(x / fx):int((x + w) / fx)]
        image = part if part.size else image
    return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
