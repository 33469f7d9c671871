"""Look-alike search: `index`, `similar`, `webcam --index`, the Catalog API, faiss and Ray, on real photos."""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli
from video import garment_video

FOLDERS = ("dress", "pants", "shoes", "t-shirt")


@pytest.fixture(scope="module")
def shop(dev_photos, tmp_path_factory):
    """A folder of 16 real development photos, 4 from each of 4 folders, and its catalogue."""
    folder = tmp_path_factory.mktemp("shop") / "photos"
    for name in FOLDERS:
        (folder / name).mkdir(parents=True)
        for photo in sorted((dev_photos / name).iterdir())[:4]:
            shutil.copy(photo, folder / name / photo.name)
    catalog = folder.parent / "shop.npz"
    run_cli("index", folder, "--output", catalog, check=0)
    return folder, catalog


def photos_in(folder):
    return sorted(str(p) for p in folder.rglob("*.jpg"))


def test_similar_finds_the_query_itself_first(shop):
    folder, catalog = shop
    query = photos_in(folder)[5]
    proc = run_cli("similar", query, "--index", catalog, "--json", check=0)
    answer = json.loads(proc.stdout)
    assert answer["query"] == query
    assert answer["results"][0]["path"] == query and answer["results"][0]["similarity"] > 0.999
    assert len(answer["results"]) == 5 and set(answer["results"][0]) == {"path", "similarity", "label", "box"}
    scores = [r["similarity"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)


def test_human_output_lists_scores_and_paths(shop):
    folder, catalog = shop
    query = photos_in(folder)[0]
    lines = run_cli("similar", query, "--index", catalog, "--top-k", 2, check=0).stdout.splitlines()
    assert lines[0] == query and lines[1].split()[:2] == ["1.00", query] and len(lines) == 3


def test_same_label_keeps_the_querys_label(shop):
    folder, catalog = shop
    query = photos_in(folder)[0]
    label = json.loads(run_cli("classify", query, "--json", check=0).stdout)["label"]
    results = json.loads(run_cli("similar", query, "--index", catalog, "--json", "--same-label", check=0).stdout)["results"]
    assert results and all(r["label"] == label for r in results)


def test_a_second_run_embeds_only_new_and_changed_photos(shop, tmp_path, dev_photos):
    folder, catalog = shop
    mine, copy = tmp_path / "photos", tmp_path / "shop.npz"
    shutil.copytree(folder, mine)
    run_cli("index", mine, "--output", copy, check=0)
    changed = sorted(mine.rglob("*.jpg"))[0]
    os.utime(changed, ns=(0, changed.stat().st_mtime_ns + 10**9))
    shutil.copy(sorted((dev_photos / "shirt").iterdir())[0], mine / "new.jpg")
    proc = run_cli("index", mine, "--output", copy, "--json", check=0)
    assert sorted(json.loads(line)["path"] for line in proc.stdout.splitlines()) == sorted([str(changed), str(mine / "new.jpg")])
    assert "17 photos (2 embedded, 15 unchanged, 0 failed)" in proc.stderr


def test_a_catalogue_moved_with_its_photos_answers_from_any_folder(shop, tmp_path):
    folder, catalog = shop
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved / "photos")
    shutil.copy(catalog, moved / "shop.npz")
    query = photos_in(moved / "photos")[3]
    results = json.loads(run_cli("similar", query, "--index", "shop.npz", "--json", check=0, cwd=moved).stdout)["results"]
    assert results[0]["path"] == os.path.relpath(query, moved) and (moved / results[0]["path"]).is_file()


def test_a_bad_file_gets_one_line_and_the_rest_are_indexed(shop, tmp_path):
    folder, _ = shop
    mine = tmp_path / "photos"
    shutil.copytree(folder / "dress", mine)
    (mine / "broken.jpg").write_bytes(b"not a photo at all")
    proc = run_cli("index", mine, "--output", tmp_path / "c.npz", check=1)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg" in errors[0]
    assert "4 photos (4 embedded, 0 unchanged, 1 failed)" in proc.stderr


def test_a_catalogue_of_another_model_is_refused_in_one_line(shop, tmp_path):
    folder, _ = shop
    other = tmp_path / "fp32.npz"
    run_cli("index", folder / "pants", "--output", other, "--model", "fp32", check=0)
    proc = run_cli("similar", photos_in(folder)[0], "--index", other, check=1)
    assert proc.stderr.count("\n") == 1 and "another model" in proc.stderr and "Traceback" not in proc.stderr
    assert run_cli("index", folder / "dress", "--output", other, check=1).stderr.count("\n") == 1


def test_a_missing_or_foreign_catalogue_is_one_line(shop, tmp_path):
    query = photos_in(shop[0])[0]
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    for catalog in (tmp_path / "none.npz", tmp_path / "junk.npz"):
        proc = run_cli("similar", query, "--index", catalog, check=1)
        assert proc.stderr.count("\n") == 1 and "fashion-edge index" in proc.stderr


def test_an_interrupted_index_keeps_what_it_had_embedded(train_photos, tmp_path):
    from fashion_edge.catalog import Catalog
    catalog = tmp_path / "big.npz"
    # Ctrl-C in a terminal reaches a process whose SIGINT is at its default; a test run started in
    # the background (`pytest &`) would otherwise hand the command an ignored SIGINT.
    proc = subprocess.Popen([sys.executable, "-m", "fashion_edge", "index", train_photos, "--output", catalog,
                             "--batch-size", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while not proc.stderr.readline().startswith("indexing: 3"):  # progress: a line at each tenth
        pass
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "interrupted:" in err and "Traceback" not in err
    kept = len(Catalog.open(catalog))
    assert 300 <= kept < 3068


def test_the_python_api(shop, tmp_path):
    from fashion_edge import Catalog, Classifier, Hit
    folder, _ = shop
    clf = Classifier()
    catalog = Catalog.create(tmp_path / "api.npz", clf)
    assert [error for _, error in catalog.update(clf, photos_in(folder / "shoes"))] == [None] * 4
    reopened = Catalog.open(tmp_path / "api.npz", clf)
    query = photos_in(folder / "shoes")[2]
    [(path, hits)] = list(reopened.similar(clf, [query], k=2))
    assert path == query and isinstance(hits[0], Hit) and hits[0].path == query and len(hits) == 2


def test_faiss_finds_the_same_nearest_as_exact_search(shop):
    pytest.importorskip("faiss")
    from fashion_edge import search
    from fashion_edge.catalog import Catalog
    vectors = Catalog.open(shop[1]).matrix()
    exact = search.Exact(vectors).search(vectors.astype(np.float32), 3)
    for approximate in (False, True):
        found = search.engine(vectors, approximate=approximate).search(vectors.astype(np.float32), 3)
        assert (found[1][:, 0] == exact[1][:, 0]).all()
        assert np.allclose(found[0][:, 0], exact[0][:, 0], atol=1e-2)


def test_a_large_catalogue_stores_its_approximate_index(tmp_path, monkeypatch):
    pytest.importorskip("faiss")
    from fashion_edge import search
    from fashion_edge.catalog import Catalog
    from fashion_edge.classifier import Prediction
    monkeypatch.setattr(search, "APPROXIMATE_FROM", 100)  # the size at which the index is used, not the index
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((400, 256)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = Catalog(tmp_path / "c.npz", "model", 1)
    for i, vector in enumerate(vectors):
        catalog.add(tmp_path / f"{i}.jpg", vector, Prediction(label="Shirt", class_id=6, confidence=1.0, box=None))
    catalog.save()
    reopened = Catalog.open(tmp_path / "c.npz")
    assert reopened.ann is not None
    assert [h.path for h in reopened.search(vectors[7], 1)[0]] == [str(tmp_path / "7.jpg")]
    reopened.save()  # after a search the engine holds the index: saved from there
    assert Catalog.open(tmp_path / "c.npz").ann is not None


def test_webcam_lists_the_nearest_catalogue_items_per_frame(data_dir, tmp_path):
    from fashion_edge import dataset
    images, labels = dataset.load("test", data_dir)
    clip = tmp_path / "clip.avi"
    garment_video(clip, images[:3], labels[:3], 4)
    catalog = tmp_path / "samples.npz"
    run_cli("index", ROOT / "samples", "--output", catalog, check=0)
    proc = run_cli("webcam", "--source", clip, "--no-display", "--json", "--index", catalog, check=0)
    frames = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(frames) == 12
    for frame in frames:
        assert len(frame["similar"]) == 3 and set(frame["similar"][0]) == {"path", "similarity", "label", "box"}


def test_index_on_a_local_ray_instance_matches_a_local_run(shop, tmp_path):
    pytest.importorskip("ray.data")
    from fashion_edge.catalog import Catalog
    folder, catalog = shop
    on_ray = tmp_path / "ray.npz"
    proc = run_cli("index", folder, "--output", on_ray, "--ray", "local", "--workers", 2, check=0)
    assert "16 photos (16 embedded" in proc.stderr
    local, remote = Catalog.open(catalog), Catalog.open(on_ray)
    rows = [local.row(remote.item(r)["path"]) for r in range(len(remote))]
    assert np.allclose(local.matrix()[rows].astype(np.float32), remote.matrix().astype(np.float32), atol=2e-3)
    assert [local.item(r)["label"] for r in rows] == [remote.item(r)["label"] for r in range(len(remote))]


def test_help_teaches_with_an_example():
    for verb in ("index", "similar"):
        text = run_cli(verb, "--help", check=0).stdout
        assert "fashion-edge index" in text and "fashion-edge similar" in text
