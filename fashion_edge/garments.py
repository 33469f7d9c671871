"""The garments a person wears, found by the packaged garment-region network.

The network marks each pixel as background, one of six garment regions, or the person's skin
and hair. A person is in view when enough of the photo is skin or hair; then every garment
region on the person, big enough and clearly won, becomes a mask and a box, and the classifier
names each (see Classifier).
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
RUN_SIDE = 256      # the network sees the photo at this long side: a garment over 1% is then 650+ pixels,
SECOND_SIDE = 320   # and where that shows a person, at this one too, the two averaged: fewer stray regions and dresses split
MIN_PERSON = 0.01   # share of the photo that must be skin or hair for a person to be in view,
MIN_SKIN = 0.06     # and share of the figure (all that is not background): stray skin-coloured pixels on a garment are no person
MIN_GARMENT = 0.01  # a garment region smaller than this share of the photo is not listed,
MIN_CARRIED = 0.015  # nor footwear or a bag under this: on street photos most of those were false
MIN_LEAD = 0.9      # logits: a region (after the main garment) that wins its pixels by less, on average, is a guess
SPECK = 0.2         # parts of a region smaller than this share of its largest part are specks, not garment
# The classes each region may be. An out-of-class region (a skirt, shorts) is listed as unknown.
CLASSES = {"upper": (0, 2, 4, 6), "lower": (1,), "dress": (3,), "footwear": (5, 7, 9), "bag": (8,), "out-of-class": ()}
# Never a person's main garment, so listed after what they wear: the network takes some dark
# garments on a plain backdrop for a bag, and a large false bag would otherwise name the photo.
CARRIED = ("footwear", "bag")
# The upper-body region holds every layer (a coat and the top under it) while the main garment is
# the largest single one: on whole people (their footwear in view) it counts at this share of its area.
LAYERS = 0.8


@dataclass
class Region:
    name: str           # a key of CLASSES
    mask: np.ndarray    # uint8 [h, w] at the network's size, 255 = this garment
    box: tuple          # (x, y, w, h) in the photo given to find()
    area: float         # share of the photo
    lead: float         # how far, on average over its pixels, the region's score is above the runner-up's, in logits


class RegionFinder:
    def __init__(self, path=None, threads=None):
        self.path = Path(path or REGION_MODEL)
        self.session = open_session(self.path, threads, "export.regions_to_onnx")
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.names = json.loads(meta["regions"])
            self.logit_step = float(json.loads(meta["output"])["logit_step"])
        except (KeyError, ValueError, TypeError):
            raise ModelError(f"{self.path}: no 'regions' and 'output' metadata with its logit_step; "
                             "export it with export.regions_to_onnx") from None
        self.input_name = self.session.get_inputs()[0].name

    def scores(self, bgr, side=RUN_SIDE):
        """[regions, h, w] region scores, the larger the likelier, for a BGR photo seen at `side` on its long side."""
        x, (sh, sw) = network_input(bgr, side)
        return upsampled(self.session.run(None, {self.input_name: x})[0][0])[:, :sh, :sw]

    def find(self, bgr):
        """The garments of the person in a BGR photo: what they wear, largest first (see LAYERS),
        then their footwear and bags, largest first; [] when no person is in view."""
        scores = self.scores(bgr)
        if not person_in_view(self.codes_of(scores.argmax(0))[1], self.names):
            return []  # a garment alone costs one run of the network
        return self.regions_of(averaged(scores, self.scores(bgr, SECOND_SIDE)), *bgr.shape[:2])

    def codes_of(self, best):
        """(each pixel's best region code, best, with the figure's specks made background; each code's share of the photo)."""
        codes = on_the_person(best.astype(np.uint8), self.names.index("background"))
        return codes, np.bincount(codes.ravel(), minlength=len(self.names)) / codes.size

    def regions_of(self, scores, h, w):
        """find()'s Regions from the network's scores [regions, h', w'] of an h x w photo."""
        best = scores.argmax(0)
        codes, share = self.codes_of(best)
        if not person_in_view(share, self.names):
            return []
        runners_up = scores.copy()
        np.put_along_axis(runners_up, best[None], -np.inf, 0)
        # Upsampled and averaged scores are whole 128ths, so these float64 sums are exact in any order: every CPU agrees.
        lead = (scores.max(0) - runners_up.max(0)).astype(np.float64)
        regions = []
        for name in CLASSES:
            code, least = self.names.index(name), MIN_CARRIED if name in CARRIED else MIN_GARMENT
            if share[code] < least:  # specks removed can only make it smaller
                continue
            mask = without_specks((codes == code).astype(np.uint8) * 255)
            pixels = mask > 0
            area = np.count_nonzero(pixels) / mask.size
            if area >= least:
                regions.append(Region(name, mask, box_of(mask, w, h), area,
                                      lead[pixels].sum() / np.count_nonzero(pixels) * self.logit_step))
        layers = LAYERS if any(r.name == "footwear" for r in regions) else 1.0
        regions.sort(key=lambda r: (r.name in CARRIED, -r.area * (layers if r.name == "upper" else 1.0)))
        return regions[:1] + [r for r in regions[1:] if r.lead >= MIN_LEAD]


def settings():
    """The values, besides the network, that decide what find() returns: a cache of its results
    (a catalogue's embeddings) is stale when they change."""
    return (RUN_SIDE, SECOND_SIDE, MIN_PERSON, MIN_SKIN, MIN_GARMENT, MIN_CARRIED, MIN_LEAD, SPECK, LAYERS, CLASSES, CARRIED)


def on_the_person(codes, background):
    """Region codes with the figure's specks (see without_specks) made background, the figure being
    all that is not background: a patch of wall or a car taken for a coat is no garment the person
    wears. Large parts all stay, since a white garment on a white backdrop can split the figure."""
    figure = without_specks((codes != background).astype(np.uint8) * 255)
    return np.where(figure > 0, codes, np.uint8(background))


def person_in_view(share, names):
    """Whether a person is in view, given each region's share of the photo's pixels (in names' order)."""
    person, figure = share[names.index("person")], 1 - share[names.index("background")]
    return person >= MIN_PERSON and person >= MIN_SKIN * figure


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


def network_input(bgr, side=RUN_SIDE):
    """(float32 [1, 3, H, W] in [0, 1], (h, w)): a BGR photo scaled to `side` on its long side,
    h x w, then padded to multiples of 16 by repeating its edge, as the network takes it."""
    h, w = bgr.shape[:2]
    scale = side / max(h, w)
    sw, sh = max(16, round(w * scale)), max(16, round(h * scale))
    small = cv2.copyMakeBorder(preprocess.area_resized(bgr, sw, sh), 0, -sh % 16, 0, -sw % 16, cv2.BORDER_REPLICATE)
    return (small.astype(np.float32) / 255).transpose(2, 0, 1)[None], (sh, sw)


def upsampled(scores, factor=4):
    """float32 [C, h * factor, w * factor]: scores [C, h, w] scaled up bilinearly, pixel centres aligned
    (as PyTorch's interpolate without align_corners). Separate numpy multiplications and additions
    round alike on every CPU, so every CPU finds the same regions."""
    out = scores.astype(np.float32)
    for axis in (1, 2):
        n = out.shape[axis]
        source = np.maximum((np.arange(n * factor, dtype=np.float32) + 0.5) / factor - 0.5, 0)
        below = np.floor(source).astype(np.int64)
        above = np.minimum(below + 1, n - 1)
        shape = [1, 1, 1]
        shape[axis] = -1
        weight = (source - below).astype(np.float32).reshape(shape)
        out = np.take(out, below, axis) * (1 - weight) + np.take(out, above, axis) * weight
    return out


def averaged(scores, larger):
    """The mean of scores [C, h, w] and of scores of the same photo seen larger, [C, H, W], each
    pixel taking the larger map's nearest one. Halves of whole 64ths: exact on every CPU."""
    (_, h, w), (_, big_h, big_w) = scores.shape, larger.shape
    rows, cols = (2 * np.arange(h) + 1) * big_h // (2 * h), (2 * np.arange(w) + 1) * big_w // (2 * w)
    return (scores + larger[:, rows[:, None], cols]) / 2  # one gather, not a copy per axis


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
