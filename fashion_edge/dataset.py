"""Fashion-MNIST on disk: find the four IDX files and read them with numpy alone.

Training, export calibration and `fashion-edge eval` all read the data through this module.
"""
import gzip
import os
from pathlib import Path

import numpy as np

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
# SHA-256 of the decompressed files: Debian recompresses the archives, so the .gz bytes differ.
SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# The dataset's class names, in label order. The exporter writes them into the model file,
# whose metadata is what the runtime reads.
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
USER_CACHE = Path("~/.cache/fashion-edge/fashion-mnist").expanduser()
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
HOW_TO_GET = "install it with 'apt install dataset-fashion-mnist' or 'fashion-edge download'"

_MAGIC = {2049: 1, 2051: 3}  # IDX magic for uint8 data -> number of dimensions


class DataError(Exception):
    """A data file is missing or damaged; the message names the file and the fix."""


def search_dirs(data_dir=None):
    """Where the data is looked for, in order."""
    dirs = [data_dir, os.environ.get("FASHION_EDGE_DATA"), USER_CACHE, SYSTEM_DIR]
    return [Path(d).expanduser() for d in dirs if d]


def find_data_dir(data_dir=None):
    """The first directory holding all four files (plain or .gz); an explicit data_dir is the only one tried."""
    names = [name for pair in FILES.values() for name in pair[:2]]
    for d in search_dirs(data_dir) if data_dir is None else [Path(data_dir).expanduser()]:
        if all(_existing(d / name) for name in names):
            return d
    if data_dir is not None:
        raise DataError(f"{data_dir}: no Fashion-MNIST files there; {HOW_TO_GET}, or pass another --data-dir")
    looked = ", ".join(str(d) for d in search_dirs())
    raise DataError(f"Fashion-MNIST not found (looked in {looked}); {HOW_TO_GET}")


def _existing(base):
    for path in (base, base.with_name(base.name + ".gz")):
        if path.is_file():
            return path
    return None


def read_bytes(path):
    """The decompressed content of a plain or gzipped file."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e}); delete it and {HOW_TO_GET}") from None


def read_idx(path, expected_count=None):
    """A uint8 IDX file as a numpy array: images [N, 28, 28] or labels [N]."""
    data = read_bytes(path)
    fix = f"the file is damaged; delete it and {HOW_TO_GET}"
    if len(data) < 8 or int.from_bytes(data[:4], "big") not in _MAGIC:
        raise DataError(f"{path}: not an IDX file (bad magic number); {fix}")
    ndim = _MAGIC[int.from_bytes(data[:4], "big")]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and shape[1:] != (28, 28):
        raise DataError(f"{path}: images are {shape[1]}x{shape[2]}, expected 28x28; {fix}")
    if expected_count is not None and shape[0] != expected_count:
        raise DataError(f"{path}: holds {shape[0]} items, expected {expected_count}; {fix}")
    if len(data) != header + int(np.prod(shape)):
        raise DataError(f"{path}: {len(data)} bytes, expected {header + int(np.prod(shape))} (truncated?); {fix}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def load(split, data_dir=None):
    """(images uint8 [N, 28, 28], labels uint8 [N]) of the 'train' or 'test' split."""
    assert split in FILES, f"split must be one of {list(FILES)}, not {split!r}"
    images_name, labels_name, count = FILES[split]
    d = find_data_dir(data_dir)
    images = read_idx(_existing(d / images_name), count)
    labels = read_idx(_existing(d / labels_name), count)
    if labels.max() > 9:
        raise DataError(f"{d / labels_name}: labels above 9; the file is damaged; {HOW_TO_GET}")
    return images, labels
