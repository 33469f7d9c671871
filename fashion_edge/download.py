"""`fashion-edge download`: fetch Fashion-MNIST, verify it, and write it atomically."""
import gzip
import hashlib
import os
import sys
import urllib.request
from pathlib import Path

from fashion_edge import dataset, files

class DownloadError(Exception):
    pass


def fetch(url, label, progress=True):
    import click
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            chunks = []
            with click.progressbar(length=total, label=label, file=sys.stderr if progress else open(os.devnull, "w"),
                                   show_pos=True) as bar:
                while chunk := response.read(1 << 16):
                    chunks.append(chunk)
                    bar.update(len(chunk))
    except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts and bad URLs are all OSError/ValueError
        raise DownloadError(f"{url}: download failed ({getattr(e, 'reason', e)}); check the network or --base-url") from None
    return b"".join(chunks)


def download(folder, base_url, progress=True):
    """Fetch the four .gz files into folder (default: the user cache); returns the folder."""
    folder = Path(folder or dataset.USER_CACHE).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    for name, digest in dataset.SHA256.items():
        target = folder / f"{name}.gz"
        if target.exists() and _sha256(gzip.decompress(target.read_bytes())) == digest:
            print(f"{target}: already there and verified", file=sys.stderr)
            continue
        url = base_url.rstrip("/") + f"/{name}.gz"
        data = fetch(url, name, progress)
        try:
            content = gzip.decompress(data)
        except (OSError, EOFError):
            raise DownloadError(f"{url}: not a gzip file; check --base-url") from None
        if _sha256(content) != digest:
            raise DownloadError(f"{url}: content does not match the recorded SHA-256; refusing it (is --base-url right?)")
        files.write_bytes(target, data)
    return folder


def _sha256(data):
    return hashlib.sha256(data).hexdigest()
