"""From any photo to the model's input: one garment, bright on black, 28x28.

Fashion-MNIST images are product shots that were trimmed to the garment, scaled so the
longer side fills the 28 pixels, inverted (white studio background -> black) and contrast
stretched. A phone photo shows a garment on a bed, floor or hanger, so we first find the
garment by how it differs from the background seen along the photo's border, then make the
crop look like the dataset.
"""
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

SEGMENT_SIDE = 64        # segmentation works on a copy this big: fast, and fine enough for a 28x28 result
MIN_SEGMENT_SIDE = 8     # ... and at least this big across, so a long strip still has a border and an inside
DETAIL_SIDE = 640        # a photo larger than this shows nothing more at 28x28: files are read reduced to it
BORDER = 0.06            # share of each side taken as background samples
BACKGROUND_COLOURS = 6   # clusters of border colours: floors and rugs are rarely one colour
RARE_BORDER_COLOUR = 0.08  # border colours rarer than this are taken for the garment, not background
BUSY_BORDER = 60         # median colour gradient along the border above which the background is patterned (see smoothness())
SMOOTH_WEIGHT = 60       # colour distance that a flat pixel on a patterned background counts as
GRABCUT_ITERATIONS = 2
MIN_GARMENT_AREA = 0.02  # a mask smaller than this share of the photo means no garment stands out
DETAIL_AREA = 0.04       # a final mask smaller than this is a detail (a strap, a print), not a garment (see prepare())
FLAT_FRAME = 6           # gray levels of spread below which such a frame is empty; garment photos here spread 9 or more
GROW_BELOW = 0.4         # a mask smaller than this share of the photo is grown (see grow())
GROW_ITERATIONS = 1      # its seed is most of the answer: a second iteration cost 0.4 ms a photo and gained nothing
FILL_BELOW = 0.2         # a mask still smaller than this share after growing is tried once more (see centred())
CENTRE = 1 / 3           # share of each side, around the photo's centre, that centred() takes for garment
MIDDLE_FOUND = 1 / 3     # a small mask covering this share of that middle is a whole garment: centred() leaves it
# A photo's garment is drawn with gray levels stretched into [GARMENT_FLOOR, GARMENT_FLOOR +
# GARMENT_RANGE] on black: white garments invert to near black, and the floor keeps their
# outline. Training draws a share of the scans the same way (train.train.photo_look).
GARMENT_FLOOR, GARMENT_RANGE = 60, 175
NO_EDGE = 0.95           # a larger mask than this share means GrabCut found no edge: grow() and centred() keep the old one


@dataclass
class Prepared:
    pixels: np.ndarray   # float32 [28, 28] in [0, 1], garment bright on black
    box: tuple           # (x, y, w, h) of the garment in the original image
    found: bool          # False when no garment could be told from the background
    mask: np.ndarray     # uint8 mask at segmentation size (255 = garment), for --debug-dir
    crop: np.ndarray     # the cropped garment before scaling to 28x28, for --debug-dir
    region: object = None  # garments.Region where a person wears this garment
    garments: list = field(default_factory=list)  # on a person's main garment: every garment, the main one first


def looks_like_fashion_mnist(image):
    """Grayscale, small and dark along the border, as the dataset's own images are."""
    if image.ndim == 3 or max(image.shape) > 64:
        return False
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return float(border.mean()) < 40


def prepare(image):
    """Any BGR or grayscale uint8 image -> Prepared model input."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 BGR or grayscale image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if looks_like_fashion_mnist(image):
        pixels = cv2.resize(image, (28, 28), interpolation=cv2.INTER_AREA) if (h, w) != (28, 28) else image
        return Prepared(pixels.astype(np.float32) / 255, (0, 0, w, h), True, np.full((h, w), 255, np.uint8), image)
    bgr = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = max(SEGMENT_SIDE / max(h, w), MIN_SEGMENT_SIDE / min(h, w))
    small = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    mask = segment(small)
    ys, xs = np.nonzero(mask)
    if len(ys) < DETAIL_AREA * mask.size:
        # Nothing stands out from the border, or only a detail (a strap, a stripe). In a flat
        # frame (a bare wall before a camera) nothing is there; otherwise the garment fills the
        # frame, its own colours all along the border.
        if cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).std() < FLAT_FRAME:
            gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            return Prepared(np.zeros((28, 28), np.float32), (0, 0, w, h), False, mask, gray)
        mask = np.full_like(mask, 255)
        ys, xs = np.nonzero(mask)
    # Each axis maps back by its own factor: rounding the copy's sides made them differ a little.
    sh, sw = mask.shape
    x0, x1 = int(xs.min() * w / sw), int(np.ceil((xs.max() + 1) * w / sw))
    y0, y1 = int(ys.min() * h / sh), int(np.ceil((ys.max() + 1) * h / sh))
    box = (x0, y0, x1 - x0, y1 - y0)
    return render(bgr, mask, box)


def segment(small):
    """uint8 mask (255 = garment) of a small BGR photo."""
    mask = segment_by_colour(small)
    if 0 < mask.mean() < 255 * GROW_BELOW:
        mask = grow(small, mask)
    if 0 < mask.mean() < 255 * FILL_BELOW:
        mask = centred(small, mask)
    return mask


def segment_by_colour(small):
    """The garment as what differs from the colours along the photo's border."""
    h, w = small.shape[:2]
    lab = cv2.cvtColor(cv2.GaussianBlur(small, (3, 3), 0), cv2.COLOR_BGR2LAB).astype(np.float32)
    b = max(1, round(BORDER * min(h, w)))
    border = along_border(lab, b)
    k = min(BACKGROUND_COLOURS, len(border))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)  # k-means starts from random centres: the same photo must give the same answer
    _, assigned, centres = cv2.kmeans(border, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    # A garment that runs off the photo puts its own colour on the border: a colour seen on
    # only a small stretch of the border is not taken for background.
    share = np.bincount(assigned.ravel(), minlength=k) / len(assigned)
    centres = centres[share >= RARE_BORDER_COLOUR]
    dist = np.min(np.linalg.norm(lab.reshape(-1, 1, 3) - centres[None], axis=2), axis=1).reshape(h, w)
    dist = np.maximum(cv2.GaussianBlur(dist, (5, 5), 0), smoothness(lab, b))
    otsu, _ = cv2.threshold(np.clip(dist * 2, 0, 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    rough = dist * 2 > max(otsu, 24)
    seeds = [framed(h, w)]
    if 0.05 < rough.mean() < 0.9:
        from_colour = np.where(rough, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        from_colour[dist * 2 < max(otsu, 24) / 3] = cv2.GC_BGD
        seeds.insert(0, from_colour)
    # GrabCut refines the rough colour-distance mask into a clean outline: it learns the
    # garment's and the background's own colours and prefers smooth boundaries. When the
    # border's colours explain almost nothing or everything, or that finds nothing, it
    # starts instead from the photographer's framing: a garment in the middle.
    for seed in seeds:
        mask = grabcut(small, seed, GRABCUT_ITERATIONS)
        if mask.mean() > 255 * MIN_GARMENT_AREA:
            return mask
    # GrabCut can talk itself out of a garment whose colours the whole photo shares; the
    # colour distance alone is then the best guess.
    return clean(rough.astype(np.uint8) * 255)


def smoothness(lab, b):
    """How much flatter than a patterned background each pixel is, in colour-distance units.

    A plain garment on a striped bed, a rug or a checked cloth shares some of the pattern's
    colours, so by colour alone it is missed; it stands out by being flat where the background
    is busy. On a plain background flatness says nothing, so there it is left out.
    """
    grad = (np.abs(cv2.Sobel(lab, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(lab, cv2.CV_32F, 0, 1))).sum(2)
    grad = cv2.GaussianBlur(grad, (5, 5), 0)
    busy = float(np.median(along_border(grad, b)))
    if busy < BUSY_BORDER:
        return np.zeros_like(grad)
    return SMOOTH_WEIGHT * np.clip(1 - grad / busy, 0, 1)


def along_border(a, b):
    """The values of a (one per pixel, or a colour per pixel) in the outer b rows and columns."""
    rest = a.shape[2:]
    return np.concatenate([a[:b].reshape(-1, *rest), a[-b:].reshape(-1, *rest),
                           a[:, :b].reshape(-1, *rest), a[:, -b:].reshape(-1, *rest)])


def grow(small, mask):
    """A larger mask grown from a small one, when GrabCut finds one.

    A small mask is most often a print, a stripe or a collar that stood out from a garment
    coloured much like its background (a white T-shirt on a white sheet): GrabCut, told that
    part is garment and the border is background, decides the rest. Only a mask that at least
    doubles is taken, so a slim garment's right mask (trousers) keeps its sharp outline.
    """
    seed = framed(*small.shape[:2])
    seed[mask > 0] = cv2.GC_FGD  # also on the border, where a garment runs off the photo
    if not (seed == cv2.GC_BGD).any():
        return mask
    grown = grabcut(small, seed, GROW_ITERATIONS)
    return grown if 2 * mask.mean() <= grown.mean() < 255 * NO_EDGE else mask


def centred(small, mask):
    """A larger mask from GrabCut told that the middle of the photo is garment, when it finds one.

    A mask still small after grow() most often means the garment fills the photo: its colours
    run all along the border and were taken for background, and what stood out was a print, a
    hood or a seam of the floor. A small garment held up before a wall (a webcam) covers much
    of the middle already and is kept without this second look. Where the middle is wall after
    all, GrabCut finds little beyond what it was told, so its answer must be at least twice both
    the small mask and the told middle.
    """
    h, w = small.shape[:2]
    y, x = round(h * (1 - CENTRE) / 2), round(w * (1 - CENTRE) / 2)
    if (mask[y:h - y, x:w - x] > 0).mean() >= MIDDLE_FOUND:
        return mask  # a small garment found where it was held up, not a detail of a larger one
    seed = framed(h, w)
    seed[y:h - y, x:w - x] = cv2.GC_FGD
    told = 255 * (seed == cv2.GC_FGD).mean()
    found = grabcut(small, seed, GRABCUT_ITERATIONS)
    return found if max(2 * mask.mean(), 2 * told) <= found.mean() < 255 * NO_EDGE else mask


def framed(h, w):
    """A GrabCut seed from the photographer's framing: the border is background, the rest maybe garment."""
    b = max(1, round(BORDER * min(h, w)))
    seed = np.full((h, w), cv2.GC_PR_FGD, np.uint8)
    seed[:b], seed[-b:], seed[:, :b], seed[:, -b:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    return seed


def grabcut(small, seed, iterations):
    """The cleaned garment mask GrabCut draws from a seed of GC_* labels (which it overwrites)."""
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(small, seed, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return clean(np.where((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD), 255, 0).astype(np.uint8))


def clean(mask):
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    return fill_holes(largest_central_component(mask))


def largest_central_component(mask):
    """Keep the connected region that is large and near the centre: the garment, not a corner of furniture."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    h, w = mask.shape
    centre = np.array([w / 2, h / 2])
    off_centre = np.linalg.norm((centroids[1:] - centre) / [w, h], axis=1)
    score = stats[1:, cv2.CC_STAT_AREA] * (1.5 - off_centre)
    best = 1 + int(np.argmax(score))
    return np.where(labels == best, 255, 0).astype(np.uint8)


def fill_holes(mask):
    h, w = mask.shape
    flood = np.pad(mask, 1)
    cv2.floodFill(flood, None, (0, 0), 255)
    return mask | cv2.bitwise_not(flood[1:-1, 1:-1])


def render(bgr, small_mask, box):
    """Crop the garment, invert it onto black, stretch its contrast and fit it into 28x28."""
    x, y, w, h = box
    crop = cv2.cvtColor(bgr[y:y + h, x:x + w], cv2.COLOR_BGR2GRAY)
    side = max(w, h)
    # Scale so the longer side becomes 28, as the dataset's images are; work at 4x first for clean edges.
    work = 112
    cw, ch = max(1, round(w * work / side)), max(1, round(h * work / side))
    gray = area_resized(crop, cw, ch)
    sh, sw = small_mask.shape
    fy, fx = sh / bgr.shape[0], sw / bgr.shape[1]
    sx0, sy0 = int(x * fx), int(y * fy)
    sx1, sy1 = max(sx0 + 1, round((x + w) * fx)), max(sy0 + 1, round((y + h) * fy))
    mask = scaled_mask(small_mask[sy0:sy1, sx0:sx1], cw, ch)
    inv = 255.0 - gray.astype(np.float32)
    values = inv[mask]
    lo, hi = (np.percentile(values, [2, 99]) if values.size else (0.0, 255.0))
    garment = GARMENT_FLOOR + GARMENT_RANGE * np.clip((inv - lo) / max(hi - lo, 1.0), 0, 1)
    canvas = np.zeros((work, work), np.float32)
    oy, ox = (work - ch) // 2, (work - cw) // 2
    canvas[oy:oy + ch, ox:ox + cw] = np.where(mask, garment, 0)
    return Prepared(block_means(canvas, work // 28) / 255, box, True, small_mask, crop)


def block_means(image, k):
    """float32 [h/k, w/k]: the mean of each k x k block, its k*k values added in one fixed order, so
    that every CPU rounds alike (OpenCV's and numpy's own sums vary their order with the CPU)."""
    total = np.zeros((image.shape[0] // k, image.shape[1] // k), np.float32)
    for dy in range(k):
        for dx in range(k):
            total += image[dy::k, dx::k]
    return total / np.float32(k * k)


def area_resized(image, w, h):
    """A uint8 image resized to w x h, each pixel the average of the area it covers: OpenCV's
    INTER_AREA to within a level when shrinking or enlarging up to 2x (beyond, this stays blocky
    where OpenCV blends). OpenCV's own sums fractions and rounds some pixels differently on ARM;
    here the weights are whole 4096ths, so every sum is a whole number under 2**24, which float32
    holds exactly in any order of addition: every CPU gets the same pixels."""
    rows, row_weights = area_weights(image.shape[0], h)
    out = whole_levels(np.einsum("ik,ik...->i...", row_weights, image.astype(np.float32)[rows]))
    cols, col_weights = area_weights(image.shape[1], w)
    return whole_levels(np.einsum("jk,ijk...->ij...", col_weights, out[:, cols])).astype(np.uint8)


def whole_levels(sums):
    """Sums weighted in 4096ths, back to whole levels, rounded to the nearest (exact: 4096 is a power of 2)."""
    return np.floor((sums + 2048) / 4096)


def area_weights(n_in, n_out):
    """(source pixels [n_out, taps], float32 weights [n_out, taps] in whole 4096ths summing to 4096)
    of an area resize from n_in pixels to n_out."""
    scale = n_in / n_out
    lo = np.arange(n_out) * scale
    pixel = np.floor(lo).astype(np.int64)[:, None] + np.arange(int(np.ceil(scale)) + 1)[None, :]
    overlap = np.clip(np.minimum(pixel + 1, lo[:, None] + scale) - np.maximum(pixel, lo[:, None]), 0, None)
    weights = np.round(overlap / scale * 4096)
    weights[np.arange(n_out), weights.argmax(1)] += 4096 - weights.sum(1)
    return np.minimum(pixel, n_in - 1), weights.astype(np.float32)


def scaled_mask(mask, w, h):
    """A uint8 mask scaled bilinearly to w x h, True where over 127. In numpy, not cv2.resize:
    OpenCV's 8-bit bilinear rounds differently on ARM and x86, and moved the garment's edge."""
    sh, sw = mask.shape
    ys = np.clip((np.arange(h) + 0.5) * sh / h - 0.5, 0, sh - 1)  # pixel centres, as OpenCV maps them
    xs = np.clip((np.arange(w) + 0.5) * sw / w - 0.5, 0, sw - 1)
    y0, x0 = ys.astype(np.int64), xs.astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, sh - 1), np.minimum(x0 + 1, sw - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    m = mask.astype(np.float64)
    top = m[y0][:, x0] * (1 - fx) + m[y0][:, x1] * fx
    bottom = m[y1][:, x0] * (1 - fx) + m[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy > 127


def save_debug(prepared, folder, stem):
    """Write the mask, the crop and the 28x28 model input as PNGs: STEM.mask.png and so on."""
    from fashion_edge.report import write_image_atomic
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_image_atomic(folder / f"{stem}.mask.png", prepared.mask)
    write_image_atomic(folder / f"{stem}.crop.png", prepared.crop)
    write_image_atomic(folder / f"{stem}.input.png", (prepared.pixels * 255).round().astype(np.uint8))
