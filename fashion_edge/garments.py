"""The garments a person wears, found by the packaged garment-region network.

The network marks each pixel as background, one of six garment regions, or the person's skin
and hair. A person is in view when enough of the photo is skin or hair; then every garment
region big enough becomes a mask and a box, and the classifier names each (see Classifier).
Without a person the photo is one garment alone, found by preprocess.prepare as before.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fashion_edge import preprocess
from fashion_edge.model import ModelError, open_session

REGION_MODEL = Path(__file__).parent / "models" / "garment-regions.onnx"
RUN_SIDE = 256      # the network sees the photo at this long side: a garment over 1% is then 650+ pixels
MIN_PERSON = 0.01   # share of the photo that must be skin or hair for a person to be in view,
MIN_SKIN = 0.06     # and share of the figure (all that is not background): stray skin-coloured pixels on a garment are no person
MIN_GARMENT = 0.01  # a garment region smaller than this share of the photo is not listed
SPECK = 0.2         # parts of a region smaller than this share of its largest part are specks, not garment
# The classes each region may be. An out-of-class region (a skirt, shorts) is listed as unknown.
CLASSES = {"upper": (0, 2, 4, 6), "lower": (1,), "dress": (3,), "footwear": (5, 7, 9), "bag": (8,), "out-of-class": ()}
# Never a person's main garment, so listed after what they wear: the network takes some dark
# garments on a plain backdrop for a bag, and a large false bag would otherwise name the photo.
CARRIED = ("footwear", "bag")


@dataclass
class Region:
    name: str           # a key of CLASSES
    mask: np.ndarray    # uint8 [h, w] at the network's size, 255 = this garment
    box: tuple          # (x, y, w, h) in the photo given to find()
    area: float         # share of the photo


class RegionFinder:
    def __init__(self, path=None, threads=None):
        self.path = Path(path or REGION_MODEL)
        self.session = open_session(self.path, threads, "export.regions_to_onnx")
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.names = json.loads(meta["regions"])
        except (KeyError, ValueError):
            raise ModelError(f"{self.path}: no 'regions' metadata; export it with export.regions_to_onnx") from None
        self.input_name = self.session.get_inputs()[0].name

    def probabilities(self, bgr):
        """[regions, h, w] probabilities for a BGR photo seen at RUN_SIDE on its long side."""
        h, w = bgr.shape[:2]
        scale = RUN_SIDE / max(h, w)
        sw, sh = max(16, round(w * scale)), max(16, round(h * scale))
        small = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_AREA)
        small = cv2.copyMakeBorder(small, 0, -sh % 16, 0, -sw % 16, cv2.BORDER_REPLICATE)
        x = (small.astype(np.float32) / 255).transpose(2, 0, 1)[None]
        return self.session.run(None, {self.input_name: x})[0][0, :, :sh, :sw]

    def find(self, bgr):
        """The garments of the person in a BGR photo: what they wear, largest first, then their
        footwear and bags, largest first; [] when no person is in view."""
        return self.regions_of(self.probabilities(bgr), *bgr.shape[:2])

    def regions_of(self, probabilities, h, w):
        """find()'s Regions from the network's probabilities [regions, h', w'] of an h x w photo."""
        codes = probabilities.argmax(0)
        share = np.bincount(codes.ravel(), minlength=len(self.names)) / codes.size
        person, figure = share[self.names.index("person")], 1 - share[self.names.index("background")]
        if person < MIN_PERSON or person < MIN_SKIN * figure:
            return []
        regions = []
        for name in CLASSES:
            code = self.names.index(name)
            if share[code] < MIN_GARMENT:  # specks removed can only make it smaller
                continue
            mask = without_specks((codes == code).astype(np.uint8) * 255)
            area = np.count_nonzero(mask) / mask.size
            if area >= MIN_GARMENT:
                regions.append(Region(name, mask, box_of(mask, w, h), area))
        return sorted(regions, key=lambda r: (r.name in CARRIED, -r.area))


def prepare(image, finder):
    """The Prepared input of a photo's garment; where a person wears several, that of the main one
    (the largest worn), with .garments listing each as find() orders them. finder None treats every
    photo as a garment alone."""
    if finder is None or preprocess.looks_like_fashion_mnist(image):
        return preprocess.prepare(image)
    bgr = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    regions = finder.find(bgr)
    if not regions:
        return preprocess.prepare(image)
    worn = []
    for region in regions:
        worn.append(preprocess.render(bgr, region.mask, region.box))
        worn[-1].region = region
    worn[0].garments = worn
    return worn[0]


def without_specks(mask):
    """The mask without parts far smaller than its largest: stray pixels, not a second shoe."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return mask
    sizes = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(sizes >= SPECK * sizes.max()) + 1
    return np.where(np.isin(labels, keep), 255, 0).astype(np.uint8)


def box_of(mask, w, h):
    """(x, y, w, h) in a w x h photo of a mask's pixels; each axis maps back by its own ratio."""
    ys, xs = np.nonzero(mask)
    sh, sw = mask.shape
    x0, x1 = int(xs.min() * w / sw), int(np.ceil((xs.max() + 1) * w / sw))
    y0, y1 = int(ys.min() * h / sh), int(np.ceil((ys.max() + 1) * h / sh))
    return (x0, y0, x1 - x0, y1 - y0)
