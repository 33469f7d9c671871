"""The numpy IDX reader, on the real Fashion-MNIST files and on damaged copies of them."""
import gzip

import numpy as np
import pytest

from fashion_edge import dataset


def test_reads_the_real_files(data_dir):
    images, labels = dataset.load("train", data_dir)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and set(np.unique(labels)) == set(range(10))
    # The dataset is balanced: 6,000 images per class.
    assert np.bincount(labels).tolist() == [6000] * 10
    test_images, test_labels = dataset.load("test", data_dir)
    assert test_images.shape == (10000, 28, 28) and np.bincount(test_labels).tolist() == [1000] * 10


def test_plain_and_gzipped_files_read_the_same(data_dir, tmp_path):
    gz = next(data_dir.glob("t10k-labels-idx1-ubyte*"))
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(dataset.read_bytes(gz))
    assert np.array_equal(dataset.read_idx(plain, 10000), dataset.read_idx(gz, 10000))


def damaged(data_dir, tmp_path, change):
    content = dataset.read_bytes(next(data_dir.glob("t10k-images-idx3-ubyte*")))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(change(content)))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b"\x00\x00\x09\x99" + b[4:], "bad magic number"),
    (lambda b: b[:4] + (9999).to_bytes(4, "big") + b[8:], "holds 9999 items, expected 10000"),
])
def test_damaged_files_get_one_clear_line(data_dir, tmp_path, change, message):
    path = damaged(data_dir, tmp_path, change)
    with pytest.raises(dataset.DataError) as err:
        dataset.read_idx(path, 10000)
    text = str(err.value)
    assert message in text and str(path) in text and "dataset-fashion-mnist" in text and "\n" not in text


def test_a_broken_gzip_is_named(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(dataset.DataError, match="cannot read"):
        dataset.read_idx(path)


def test_search_order_and_the_hint_when_nothing_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_EDGE_DATA", str(tmp_path / "env"))
    dirs = dataset.search_dirs(tmp_path / "flag")
    assert dirs[:2] == [tmp_path / "flag", tmp_path / "env"]
    assert dirs[2:] == [dataset.USER_CACHE, dataset.SYSTEM_DIR]
    with pytest.raises(dataset.DataError, match="flag: no Fashion-MNIST files there.*apt install dataset-fashion-mnist"):
        dataset.find_data_dir(tmp_path / "flag")
    monkeypatch.setattr(dataset, "USER_CACHE", tmp_path / "cache")
    monkeypatch.setattr(dataset, "SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(dataset.DataError, match="apt install dataset-fashion-mnist.*fashion-edge download"):
        dataset.find_data_dir()


def test_the_environment_variable_is_honoured(data_dir, tmp_path, monkeypatch):
    for f in data_dir.iterdir():
        (tmp_path / f.name).symlink_to(f)
    monkeypatch.setenv("FASHION_EDGE_DATA", str(tmp_path))
    assert dataset.find_data_dir() == tmp_path
