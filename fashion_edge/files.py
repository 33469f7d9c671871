"""Files written whole or not at all: a run stopped halfway never leaves half a file behind."""
import os
from contextlib import contextmanager
from pathlib import Path


def partial_name(path):
    """Where a file is written before it is moved into place: hidden, beside it, with its suffix
    (OpenCV picks an image's or a video's format by the suffix)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextmanager
def replacing(path):
    """A temporary path to write; moved over `path` when the block ends without an error."""
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path, data):
    with replacing(path) as tmp:
        tmp.write_bytes(data)
