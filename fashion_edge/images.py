"""Reading image files safely: every way a file can be unusable becomes one ImageError line.

Dimensions are read from the header before decoding, because a small file can declare
30000x30000 pixels and inflate to gigabytes: a PNG or TIFF of under 1 MB, a WebP of 38 bytes.
"""
import functools
import re
import struct
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

MAX_PIXELS = 50_000_000  # 50 megapixels: above any phone's photo, far below a decompression bomb
MIN_SIDE = 16
REDUCED_JPEG = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
NOT_AN_IMAGE = "not an image (or not JPEG, PNG, WebP, TIFF, BMP, GIF or PNM); convert it to JPEG or PNG"
# HEIC and AVIF need the optional extra; they are listed anyway, so that a folder of iPhone
# photos says so for each one instead of skipping them.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm", ".pbm",
                  ".heic", ".heif", ".avif"}
STDIN = "-"
MAX_STDIN = 256 * 1024 * 1024  # `cat /dev/zero | fashion-edge classify -` must end
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class ImageError(Exception):
    """An input that cannot be classified; the message says why and what to do."""


def header_size(data):
    """(width, height) from the header of a JPEG, PNG, WebP, TIFF, BMP, GIF or PNM file, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        return jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
            return struct.unpack("<H", data[26:28])[0] & 0x3FFF, struct.unpack("<H", data[28:30])[0] & 0x3FFF
        if kind == b"VP8L":  # lossless: 14-bit sizes less one, packed after the signature byte
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, (bits >> 14 & 0x3FFF) + 1
        if kind == b"VP8X":  # extended: 24-bit canvas sizes less one
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        return None
    if data[:4] in (b"II*\x00", b"MM\x00*") and len(data) >= 8:
        return tiff_size(data)
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    pnm = re.match(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)", data[:512])
    if pnm:
        return int(pnm[1]), int(pnm[2])
    return None


def jpeg_size(data):
    """(width, height) from a JPEG's start-of-frame segment, found by walking the segments before it."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte before the marker
            i += 1
            continue
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def tiff_size(data):
    """(width, height) of a TIFF's first image, from its ImageWidth and ImageLength tags."""
    order = "<" if data[:2] == b"II" else ">"
    at = struct.unpack(order + "I", data[4:8])[0]
    if at + 2 > len(data):
        return None
    size = {}
    for i in range(struct.unpack(order + "H", data[at:at + 2])[0]):
        entry = data[at + 2 + 12 * i:at + 14 + 12 * i]
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257) and kind == 3:  # SHORT
            size[tag] = struct.unpack(order + "H", entry[8:10])[0]
        elif tag in (256, 257) and kind == 4:  # LONG
            size[tag] = struct.unpack(order + "I", entry[8:12])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def decode(data, name="image", long_side=None):
    """Encoded image bytes -> (uint8 BGR or grayscale array, (x, y) scale to the file), or ImageError (see load_reduced)."""
    if not data:
        raise ImageError(f"{name}: empty file")
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageError(f"{name}: truncated JPEG (the file ends before the image does); copy it again")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        raise ImageError(f"{name}: truncated PNG (the file ends before the image does); copy it again")
    # Only formats whose size the header tells are decoded: OpenCV reads others too (JPEG 2000,
    # Radiance HDR, Sun raster), and any compressed one can hide a decompression bomb.
    heif_kind = heif_brand(data)
    if heif_kind:
        from fashion_edge.heif import decode_heif
        return normalize(decode_heif(data, name, heif_kind), name), (1.0, 1.0)
    size = header_size(data)
    if size is None:
        raise ImageError(f"{name}: {NOT_AN_IMAGE}")
    check_size(size, name)
    # A phone stores a portrait photo sideways and says so in its EXIF orientation tag, which
    # IMREAD_UNCHANGED ignores. A JPEG has no alpha or 16-bit depth to keep, so it is read as
    # a viewer shows it, upright.
    flags, factor = cv2.IMREAD_UNCHANGED, 1
    if data[:2] == b"\xff\xd8":
        flags = cv2.IMREAD_ANYCOLOR
        if long_side:
            factor = max(f for f in (1, 2, 4, 8) if f == 1 or (max(size) / f >= long_side and min(size) / f >= MIN_SIDE))
            flags = REDUCED_JPEG.get(factor, flags)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ImageError(f"{name}: {NOT_AN_IMAGE}")
    image = normalize(image, name)
    if factor == 1:
        return image, (1.0, 1.0)
    # The reduced sides are the file's divided by the factor and rounded up, and the EXIF
    # orientation may have turned the image: map back by the file's own sides, upright.
    h, w = image.shape[:2]
    file_w, file_h = size if (size[0] > size[1]) == (w > h) else size[::-1]
    return image, (file_w / w, file_h / h)


def check_size(size, name):
    """ImageError if (width, height) is over the megapixel limit; called before decoding."""
    if size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{name}: {size[0]}x{size[1]} pixels is over the {MAX_PIXELS // 1_000_000} megapixel limit; "
                         "resize the image first")


def heif_brand(data):
    """'AVIF', 'HEIC' or None, from the brands of an ISO media file's type box (HEIF is one)."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(data[:4], "big"), len(data), 512)
    brands = {data[8:12]} | {data[i:i + 4] for i in range(16, end - 3, 4)}
    if brands & {b"avif", b"avis"}:  # an AVIF also lists the generic HEIF brand mif1
        return "AVIF"
    if brands & {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}:
        return "HEIC"
    return None


def normalize(image, name="image"):
    """Any decoded array -> uint8 BGR or grayscale, checked for size and content."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ImageError(f"{name}: expected an image array [H, W] or [H, W, 3], got {getattr(image, 'shape', type(image))}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        if image.dtype.kind != "f":
            raise ImageError(f"{name}: unsupported pixel type {image.dtype}; use 8- or 16-bit images")
        if not np.isfinite(image).all():
            raise ImageError(f"{name}: NaN or infinite pixel values; pass values in [0, 1] or [0, 255]")
        image = np.clip(image * (255 if image.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        # Transparent parts become white, as the studio background of a product shot.
        alpha = image[:, :, 3:].astype(np.float32) / 255
        image = (image[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"{name}: {w}x{h} pixels is too small to classify (need at least {MIN_SIDE}x{MIN_SIDE})")
    if int(image.max()) - int(image.min()) < 8:
        raise ImageError(f"{name}: the image is blank (one flat colour); nothing to classify")
    return image


def load(path):
    """An image file -> uint8 BGR or grayscale array, or ImageError."""
    return load_reduced(path, None)[0]


def load_reduced(path, long_side):
    """(image, (x, y) scale): as load, but a JPEG at least twice as long as long_side is decoded at
    1/2, 1/4 or 1/8 of its size, the most that keeps its long side at least long_side, and the
    scale maps the image's pixels back to the file's ((1, 1) when not reduced). JPEG can leave
    out the fine detail while decoding: a 12-megapixel phone photo reads in a quarter of the time.
    """
    return decode(read_input(path), str(path), long_side)


def read_input(path):
    """The bytes of an image file, or of standard input for '-'; ImageError for anything else."""
    if str(path) == STDIN:
        return read_stdin()
    if URL.match(str(path)):
        raise ImageError(f"{path}: URLs are not fetched; download the image first (curl -O URL) and pass the file")
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file, and holds no images; "
                         "pass image files or a folder of them")
    if path.exists() and not path.is_file():  # a pipe would block the run, /dev/zero never end
        raise ImageError(f"{path}: not a regular file (a pipe or a device); save the image to a file first")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file; check the path") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None


_stdin_lock = threading.Lock()


def read_stdin():
    """Standard input's bytes, read once: '-' given twice, or read again to annotate, is the same image."""
    with _stdin_lock:
        return _read_stdin_once()


@functools.cache
def _read_stdin_once():
    if sys.stdin is None or sys.stdin.isatty():
        raise ImageError(f"{STDIN}: standard input is a terminal; pipe an image in: fashion-edge classify - < photo.jpg")
    data = sys.stdin.buffer.read(MAX_STDIN + 1)
    if not data:
        raise ImageError(f"{STDIN}: nothing on standard input; pipe an image in: fashion-edge classify - < photo.jpg")
    if len(data) > MAX_STDIN:
        raise ImageError(f"{STDIN}: over {MAX_STDIN >> 20} MB on standard input; save the image to a file first")
    return data


def expand(inputs):
    """Files, directories (recursed, image files only) and glob patterns -> a list of paths
    ('-', standard input, and URLs stay strings, to be reported as typed).

    Anything that does not exist, and a folder without images, is kept as it is, so that it is
    reported as an error in its place. Hidden files and folders are skipped, inside a directory
    and where a pattern's wildcard would match them (as the shell's do): a phone's
    DCIM/.thumbnails would classify each photo twice, and the ._IMG_0001.JPG files a Mac leaves
    beside copied photos are no images at all.
    """
    paths = []
    for item in inputs:
        p = Path(item)
        if item == STDIN or URL.match(item):  # kept as typed: a Path would turn https:// into https:/
            paths.append(item)
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           and not hidden(f.relative_to(p)))
            paths += found or [p]  # an empty folder is reported, not silently skipped
        elif not p.exists() and any(c in item for c in "*?["):
            anchor = Path(p.anchor) if p.is_absolute() else Path(".")
            pattern = p.relative_to(p.anchor) if p.is_absolute() else Path(item)
            matches = sorted(m for m in anchor.glob(str(pattern)) if m.is_file()
                             and (hidden(pattern) or not hidden(m.relative_to(anchor))))
            paths += matches or [p]
        else:
            paths.append(p)
    return paths


def hidden(path):
    """Whether a relative path passes through a hidden file or folder (a name starting with a dot)."""
    return any(part.startswith(".") and part not in (".", "..") for part in path.parts)
