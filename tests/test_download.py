"""`fashion-edge download` against a real HTTP server on localhost serving the real files."""
import functools
import gzip
import http.server
import shutil
import threading

import pytest

from conftest import run_cli
from fashion_edge import dataset


@pytest.fixture
def served(data_dir, tmp_path):
    """A folder served over HTTP holding the four real .gz files; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    for name in dataset.SHA256:
        source = next(data_dir.glob(name + "*"))
        if source.suffix == ".gz":
            shutil.copy(source, root / (name + ".gz"))
        else:
            (root / (name + ".gz")).write_bytes(gzip.compress(source.read_bytes()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_fetches_and_verifies_the_files(served, tmp_path):
    _, url = served
    target = tmp_path / "cache"
    run_cli("download", "--dir", target, "--base-url", url, check=0)
    assert sorted(p.name for p in target.iterdir()) == sorted(n + ".gz" for n in dataset.SHA256)
    images, labels = dataset.load("test", target)
    assert images.shape == (10000, 28, 28)
    # A second run finds them verified and fetches nothing.
    again = run_cli("download", "--dir", target, "--base-url", url, check=0)
    assert "already there and verified" in again.stderr


def test_a_corrupted_file_is_refused_and_nothing_is_written(served, tmp_path):
    root, url = served
    labels = root / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[100] ^= 1  # one flipped bit in one label
    labels.write_bytes(gzip.compress(bytes(content)))
    target = tmp_path / "cache"
    proc = run_cli("download", "--dir", target, "--base-url", url, check=1)
    assert "t10k-labels-idx1-ubyte.gz: content does not match the recorded SHA-256" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(target.glob(".*.partial*"))


def test_an_unreachable_server_is_one_line(tmp_path):
    proc = run_cli("download", "--dir", tmp_path, "--base-url", "http://127.0.0.1:9/", check=1)
    assert proc.stderr.startswith("error: http://127.0.0.1:9/") and "download failed" in proc.stderr
    assert "Traceback" not in proc.stderr
