"""HEIC (iPhone photos) and AVIF, read through the optional extra: pip install 'fashion-edge[heic]'.

Both are HEIF containers. pillow-heif parses the container without decoding, so the image's
size is checked against the megapixel limit first, as for the other formats; then pillow-heif
decodes HEIC and Pillow AVIF (pillow-heif's wheels leave AVIF to Pillow).
"""
import io
import warnings

import cv2
import numpy as np

from fashion_edge.images import ImageError, check_size

INSTALL = "pip install 'fashion-edge[heic]'"


def decode_heif(data, name, kind):
    """A HEIC or AVIF file's bytes -> uint8 BGR(A) or grayscale array, or ImageError."""
    try:
        import pillow_heif
        from PIL import Image, features
    except ImportError:
        raise ImageError(f"{name}: {kind} images need an optional decoder: {INSTALL} (or convert it to JPEG)") from None
    # A damaged file fails inside a third-party decoder, whose errors are of no one documented
    # type (ValueError, OSError, RuntimeError); each must still be one line.
    try:
        container = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)  # parses, decodes nothing
    except Exception as e:
        raise ImageError(f"{name}: damaged {kind} file ({e}); copy it again") from None
    check_size(container.size, name)
    if kind == "AVIF" and not features.check("avif"):
        raise ImageError(f"{name}: this Pillow was built without AVIF; {INSTALL} --upgrade")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # under the limit above, Pillow's own bomb warning is noise
            if kind == "HEIC":
                image = container.to_pillow()
            else:
                image = Image.open(io.BytesIO(data), formats=["AVIF"])
                check_size(image.size, name)  # Pillow's own reading of the size, still before decoding
                image.load()
    except ImageError:
        raise
    except Exception:
        raise ImageError(f"{name}: cannot decode this {kind} file (damaged, or of a kind the decoder lacks); "
                         "copy it again or convert it to JPEG") from None
    return to_array(image)


def to_array(image):
    """A PIL image -> numpy array in OpenCV's channel order; alpha is kept for normalize() to whiten."""
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    array = np.asarray(image)
    if image.mode == "RGB":
        return cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if image.mode == "RGBA":
        return cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    return array
