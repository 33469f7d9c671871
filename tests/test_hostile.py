"""Inputs that cannot be classified: one line each, the run goes on, memory stays bounded."""
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

from conftest import ROOT, run_cli_measuring_memory

SHIRT = ROOT / "samples" / "shirt.png"


def png_bomb(path, side=30000):
    """A valid PNG header and zlib stream claiming side x side grayscale pixels, in well under 1 MB."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    row = b"\x00" + b"\x00" * side
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def webp_bomb(path, side=16383):
    """A lossless WebP of side x side black pixels in 38 bytes: its five prefix codes each have
    one symbol, so a pixel takes no bits at all. Decoded, it is 805 MB."""
    fields = [(side - 1, 14), (side - 1, 14), (0, 1), (0, 3),  # size less one, no alpha, version 0
              (0, 1), (0, 1), (0, 1)]                           # no transform, no colour cache, one code group
    fields += [(1, 1), (0, 1), (0, 1), (0, 1)] * 5              # each code: simple, one symbol, 1-bit symbol 0
    bits = sum(value << sum(w for _, w in fields[:i]) for i, (value, _) in enumerate(fields))
    data = b"\x2f" + bits.to_bytes(8, "little") + bytes(9)   # slack for the decoder's read-ahead
    chunk = b"VP8L" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk)
    return path


def tiff_bomb(path, side=30000, rows=1000):
    """A TIFF of side x side gray pixels in deflate-compressed strips of `rows` rows, in under 1 MB."""
    strips = []
    for _ in range(side // rows):
        compressor = zlib.compressobj(9)
        strips.append(b"".join(compressor.compress(bytes(side)) for _ in range(rows)) + compressor.flush())
    n = len(strips)
    tags = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),  # 8-bit, deflate, gray
            (273, 4, n, 0), (277, 3, 1, 1), (278, 4, 1, rows), (279, 4, n, 0)]                   # strips: where, how long
    offsets_at = 8 + 2 + 12 * len(tags) + 4
    counts_at = offsets_at + 4 * n
    tags[5], tags[8] = (273, 4, n, offsets_at), (279, 4, n, counts_at)
    starts = [counts_at + 4 * n + sum(map(len, strips[:i])) for i in range(n)]
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII" if kind == 4 else "<HHIHxx", tag, kind, count, value) for tag, kind, count, value in tags)
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + struct.pack(f"<{n}I", *starts)
                     + struct.pack(f"<{n}I", *map(len, strips)) + b"".join(strips))
    return path


def hostile_inputs(d):
    """{file: the words its error line must contain}; every file made here, now."""
    photo = cv2.imread(str(SHIRT))
    cases = {}
    cases[d / "missing.jpg"] = "no such file"
    (d / "a folder.jpg").mkdir()
    cases[d / "a folder.jpg"] = "is a directory"
    os.mkfifo(d / "pipe.jpg")  # reading it would wait for a writer forever
    cases[d / "pipe.jpg"] = "not a regular file"
    cases[Path("/dev/zero")] = "not a regular file"  # reading it would never end
    (d / "empty.jpg").write_bytes(b"")
    cases[d / "empty.jpg"] = "empty file"
    (d / "random.png").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    cases[d / "random.png"] = "not an image"
    (d / "notes.jpg").write_text("this is a text file, not a photo\n")
    cases[d / "notes.jpg"] = "not an image"
    jpeg = cv2.imencode(".jpg", photo)[1].tobytes()
    (d / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    cases[d / "truncated.jpg"] = "truncated JPEG"
    cv2.imwrite(str(d / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cases[d / "tiny.png"] = "1x1 pixels is too small"
    cv2.imwrite(str(d / "white.png"), np.full((480, 640, 3), 255, np.uint8))
    cases[d / "white.png"] = "blank"
    cases[png_bomb(d / "bomb.png")] = "30000x30000 pixels is over the 50 megapixel limit"
    cases[webp_bomb(d / "bomb.webp")] = "16383x16383 pixels is over the 50 megapixel limit"
    cases[tiff_bomb(d / "bomb.tif")] = "30000x30000 pixels is over the 50 megapixel limit"
    return cases


def readable_inputs(d):
    """Odd but valid files: each must be classified."""
    photo = cv2.imread(str(SHIRT))
    files = [d / "sixteen-bit.png", d / "rgba.png", d / "my shirt ünïcödé.jpg", d / "shirt.webp", d / "shirt.tif"]
    cv2.imwrite(str(files[0]), photo.astype(np.uint16) * 257)
    rgba = cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)
    rgba[:20] = 0  # a transparent band
    cv2.imwrite(str(files[1]), rgba)
    files[2].write_bytes(cv2.imencode(".jpg", photo)[1].tobytes())
    for path in files[3:]:  # formats whose size is read from their own headers, as the bombs' is
        cv2.imwrite(str(path), photo)
    return files


def test_each_bad_input_is_one_line_and_the_rest_go_on(tmp_path):
    bad = hostile_inputs(tmp_path)
    good = readable_inputs(tmp_path)
    assert png_bomb(tmp_path / "size-check.png").stat().st_size < 1_000_000
    assert tiff_bomb(tmp_path / "size-check.tif").stat().st_size < 1_000_000
    args = [str(p) for p in [SHIRT, *bad, *good]]
    proc, peak_mb = run_cli_measuring_memory("classify", "--json", *args, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == args, "one line per input, in input order"
    for line, (path, words) in zip(lines[1:], bad.items()):
        assert set(line) == {"path", "error"} and words in line["error"], (path, line)
        assert "\n" not in line["error"]
    for line in [lines[0], *lines[-len(good):]]:
        assert "error" not in line and line["top_k"], line
    assert peak_mb < 400, f"peak memory {peak_mb:.0f} MB"


def test_human_output_puts_errors_on_stderr(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fashion_edge", "classify", str(SHIRT), str(tmp_path / "missing.jpg")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stdout.count("\n") == 1 and "Shirt" in proc.stdout
    assert proc.stderr.strip() == f"error: {tmp_path / 'missing.jpg'}: no such file; check the path"


def test_the_api_raises_a_clear_error(classifier, tmp_path):
    import pytest
    from fashion_edge.images import ImageError
    with pytest.raises(ImageError, match="blank"):
        classifier.predict(np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(ImageError, match="no such file"):
        classifier.predict(tmp_path / "nope.png")

    with pytest.raises(ImageError, match="NaN or infinite"):
        classifier.predict(np.full((100, 100, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match=r"expected an image array \[H, W\] or \[H, W, 3\], got \(1, 100, 100, 3\)"):
        classifier.predict(np.zeros((1, 100, 100, 3), np.uint8))
