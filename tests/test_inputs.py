"""Inputs beyond image files on disk: HEIC and AVIF (the optional extra), standard input, URLs."""
import json
import os
import struct
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli

SHIRT = ROOT / "samples" / "shirt.png"
INSTALL = "pip install 'fashion-edge[heic]'"


def heif_photos(d):
    """The sample shirt as HEIC and as AVIF, encoded here by the extra's own libraries."""
    try:
        import pillow_heif
        from PIL import Image
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"the heic extra is missing: {INSTALL}")
        pytest.skip(f"the heic extra is not installed: {INSTALL}")
    rgb = Image.open(SHIRT).convert("RGB")
    heic, avif = d / "IMG_0001.HEIC", d / "shirt.avif"
    pillow_heif.from_pillow(rgb).save(heic, format="HEIF", quality=90)
    rgb.save(avif, format="AVIF", quality=90)
    return heic, avif


def test_heic_and_avif_photos_in_a_folder_are_classified(tmp_path):
    heic, avif = heif_photos(tmp_path)
    (tmp_path / "shirt.png").write_bytes(SHIRT.read_bytes())
    proc = run_cli("classify", tmp_path, "--json", check=0)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(heic), str(avif), str(tmp_path / "shirt.png")]
    assert [line["label"] for line in lines] == ["Shirt"] * 3, lines


def test_a_heic_or_avif_bomb_is_refused_from_its_header(classifier, tmp_path):
    # The container's image size box claims 30000x30000 pixels for a file of a few kB: the
    # size is read before decoding and refused, as for the other formats.
    from fashion_edge.images import ImageError
    for photo in heif_photos(tmp_path):
        data = photo.read_bytes()
        at = data.index(b"ispe") + 8  # the box type, then its version and flags
        bomb = tmp_path / f"bomb{photo.suffix}"
        bomb.write_bytes(data[:at] + struct.pack(">II", 30000, 30000) + data[at + 8:])
        with pytest.raises(ImageError, match="30000x30000 pixels is over the 50 megapixel limit"):
            classifier.predict(bomb)


def test_without_the_extra_a_heic_photo_says_how_to_install_it(tmp_path):
    heic, avif = heif_photos(tmp_path)
    (tmp_path / "shirt.png").write_bytes(SHIRT.read_bytes())
    # The extra made unimportable, as where it was never installed.
    code = "import sys; sys.modules['pillow_heif'] = None\nfrom fashion_edge.cli import main\nmain(sys.argv[1:])\n"
    proc = subprocess.run([sys.executable, "-c", code, "classify", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1, "an input that was not classified is a failure, not a silent skip"
    assert proc.stdout.split()[:2] == [str(tmp_path / "shirt.png"), "Shirt"]
    assert proc.stderr.splitlines() == [
        f"error: {heic}: HEIC images need an optional decoder: {INSTALL} (or convert it to JPEG)",
        f"error: {avif}: AVIF images need an optional decoder: {INSTALL} (or convert it to JPEG)"]


def test_a_dash_reads_one_image_from_standard_input():
    with open(SHIRT, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "fashion_edge", "classify", "-", "--json"], stdin=stdin,
                              capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["path"], result["label"]) == ("-", "Shirt")
    empty = subprocess.run([sys.executable, "-m", "fashion_edge", "classify", "-", str(SHIRT)], input="",
                           capture_output=True, text=True)
    assert empty.returncode == 1 and "Shirt" in empty.stdout
    assert empty.stderr.startswith("error: -: nothing on standard input; pipe an image in")


def test_a_url_is_refused_in_one_line_as_typed_and_the_rest_go_on():
    url = "https://example.com/photos/shirt.jpg?size=large"
    proc = run_cli("classify", url, SHIRT, check=1)
    assert proc.stderr.strip() == (f"error: {url}: URLs are not fetched; download the image first (curl -O URL) "
                                   "and pass the file")
    assert proc.stdout.split()[:2] == [str(SHIRT), "Shirt"]
