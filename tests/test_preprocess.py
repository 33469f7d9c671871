"""Segmentation and rendering on synthetic photos: fast, and no data beside the checkout needed."""
import cv2
import numpy as np

from conftest import ROOT
from fashion_edge import preprocess

W, H = 640, 480


def floor(colour=(200, 205, 210), seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.integers(-8, 9, (H, W, 3))
    return cv2.GaussianBlur(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8), (5, 5), 0)


def shirt(img, colour, box=(200, 100, 240, 300)):
    """A T-shirt shape filling box (x, y, w, h): body and two sleeves."""
    x, y, w, h = box
    body = np.array([[x + w // 4, y], [x + 3 * w // 4, y], [x + w, y + h // 4], [x + 3 * w // 4, y + h // 3],
                     [x + 3 * w // 4, y + h], [x + w // 4, y + h], [x + w // 4, y + h // 3], [x, y + h // 4]], np.int32)
    cv2.fillPoly(img, [body], colour)
    return img


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / (aw * ah + bw * bh - ix * iy)


def test_a_dark_garment_on_a_light_floor_is_boxed_and_drawn_bright_on_black():
    p = preprocess.prepare(shirt(floor(), (90, 60, 40)))
    assert p.found and iou(p.box, (200, 100, 240, 300)) > 0.85
    assert p.pixels.shape == (28, 28) and p.pixels.dtype == np.float32
    # As in Fashion-MNIST: bright on black, the longer side (its height) filling the 28 pixels.
    assert p.pixels[:, 0].max() == 0 and p.pixels[:, -1].max() == 0
    assert p.pixels[14, 14] > 0.2 and (p.pixels[:, 14] > 0).sum() >= 26


def test_a_white_garment_on_a_black_floor_keeps_its_outline():
    p = preprocess.prepare(shirt(floor((25, 25, 25)), (245, 245, 245)))
    assert p.found and iou(p.box, (200, 100, 240, 300)) > 0.85
    # Inverted, white is near black: the floor of the stretch keeps it visible.
    assert p.pixels[8:20, 10:18].min() >= preprocess.GARMENT_FLOOR / 255 - 0.01


def test_a_print_on_a_garment_coloured_like_the_floor_grows_into_the_garment():
    img = shirt(floor((235, 235, 235)), (215, 215, 215))  # a pale T-shirt on a pale sheet
    cv2.circle(img, (320, 220), 35, (30, 30, 160), -1)    # with a red print
    p = preprocess.prepare(img)
    assert p.found and p.box[2] > 150 and p.box[3] > 200, f"only the print was found: {p.box}"


def test_a_garment_filling_the_photo_is_taken_whole():
    img = np.full((H, W, 3), (120, 60, 40), np.uint8)  # a striped jumper, its colours all along the border
    for y in range(0, H, 40):
        cv2.rectangle(img, (0, y), (W, y + 19), (80, 40, 25), -1)
    p = preprocess.prepare(img)
    assert p.found and p.box == (0, 0, W, H)


def test_a_bare_wall_is_nothing_in_view():
    p = preprocess.prepare(np.full((H, W, 3), 180, np.uint8))
    assert not p.found and p.pixels.max() == 0


def test_a_plain_garment_on_a_striped_bed_is_found_by_being_flat():
    img = floor()
    for x in range(0, W, 24):
        cv2.rectangle(img, (x, 0), (x + 11, H), (60, 60, 150), -1)
    p = preprocess.prepare(shirt(img, (60, 60, 150)))  # the colour of the stripes
    assert p.found and iou(p.box, (200, 100, 240, 300)) > 0.6


def test_a_fashion_mnist_image_passes_through_unchanged():
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 8:20] = 200
    p = preprocess.prepare(image)
    assert p.found and np.array_equal(p.pixels, image / np.float32(255)) and p.box == (0, 0, 28, 28)


def test_the_box_of_a_garment_running_off_a_strip_stays_inside_it():
    img = np.full((40, 2000, 3), 210, np.uint8)
    img[:, 900:2000] = (40, 40, 120)
    p = preprocess.prepare(img)
    x, y, w, h = p.box
    assert 0 <= x and x + w <= 2000 and 0 <= y and y + h <= 40


def test_photos_shrink_as_an_area_resize_does():
    # Shrinking is done in whole numbers so that every CPU gets the same pixels; it must still be
    # OpenCV's area average, to within a level.
    photo = cv2.imread(str(ROOT / "samples" / "street.jpg"))
    rng = np.random.default_rng(0)
    for _ in range(20):
        w, h = int(rng.integers(16, photo.shape[1])), int(rng.integers(16, photo.shape[0]))
        ours, opencv = preprocess.area_resized(photo, w, h), cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        assert ours.shape == opencv.shape and np.abs(ours.astype(int) - opencv).max() <= 1, (w, h)
    canvas = (rng.random((112, 112)) * 255).astype(np.float32)
    np.testing.assert_allclose(preprocess.block_means(canvas, 4), cv2.resize(canvas, (28, 28), interpolation=cv2.INTER_AREA),
                               atol=1e-3)


def test_a_mask_scales_as_a_bilinear_resize_does():
    # preprocess scales masks in numpy so that every CPU gets the same edge; it must still be
    # the bilinear scaling it replaced, bar pixels exactly on the threshold.
    rng = np.random.default_rng(0)
    for _ in range(50):
        sh, sw, h, w = (int(v) for v in rng.integers(8, 112, 4))
        mask = (cv2.GaussianBlur(rng.random((sh, sw)).astype(np.float32), (7, 7), 0) > 0.5).astype(np.uint8) * 255
        scaled = preprocess.scaled_mask(mask, w, h)
        assert scaled.shape == (h, w)
        assert np.mean(scaled != (cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR) > 127)) < 0.015
