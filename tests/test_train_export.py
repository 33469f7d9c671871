"""Training and export, run as a user runs them: the real scripts on the real data."""
import json
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch

from conftest import ROOT, SHARED, need

TRAIN = [sys.executable, "-m", "train.train"]
EXPORT = [sys.executable, "-m", "export.to_onnx", "--limit", "1000"]
AVERAGE = [sys.executable, "-m", "train.average"]
QUICK = ["--limit", "2000", "--batch-size", "64"]


def run(cmd, check=0, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, cwd=ROOT, **kw)
    assert proc.returncode == check, f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run(TRAIN + ["--epochs", "2", "--output", out] + QUICK)
    return out


def test_a_short_run_writes_every_artifact(trained):
    for name in ("last.pt", "best.pt", "metrics.json", "curves.png", "confusion.png"):
        assert (trained / name).stat().st_size > 0, name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert [m["epoch"] for m in metrics["metrics"]] == [1, 2]
    assert {"train_loss", "train_acc", "val_acc", "lr", "seconds"} <= set(metrics["metrics"][0])
    # 2,000 images for two epochs already learn something: far above chance (10%).
    assert metrics["test_accuracy"] > 0.5
    assert not list(trained.glob(".*.partial*"))


def test_bf16_mixed_precision_learns_as_well_and_saves_float32_weights(trained, tmp_path):
    run(TRAIN + ["--epochs", "2", "--bf16", "--output", tmp_path] + QUICK)
    fp32 = json.loads((trained / "metrics.json").read_text())["test_accuracy"]
    bf16 = json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"]
    assert abs(bf16 - fp32) < 0.05, (bf16, fp32)
    weights = torch.load(tmp_path / "best.pt", weights_only=False)["model"]
    assert all(w.dtype in (torch.float32, torch.int64) for w in weights.values())


def test_the_recipe_written_into_the_model_reruns_the_same_training(tmp_path):
    from train.train import as_flags, parse_args
    args = vars(parse_args(["--bf16", "--erase", "0", "--width", "40", "--output", str(tmp_path)]))
    assert vars(parse_args(shlex.split(as_flags(args)))) == args


def test_fine_tuning_takes_the_width_of_the_checkpoint_it_starts_from(tmp_path):
    run(TRAIN + ["--epochs", "1", "--width", "8", "--output", tmp_path / "narrow"] + QUICK)
    tuned = run(TRAIN + ["--epochs", "1", "--init", tmp_path / "narrow" / "last.pt", "--output", tmp_path / "tuned"]
                + QUICK)
    assert "initialized from" in tuned.stderr
    assert torch.load(tmp_path / "tuned" / "last.pt", weights_only=False)["args"]["width"] == 8


def test_a_run_with_photos_learns_from_them_beside_the_scans(data_dir, train_photos, tmp_path):
    # A few photos of every folder, with the set's own README as the class mapping.
    few = tmp_path / "photos"
    for folder in sorted(p for p in train_photos.iterdir() if p.is_dir()):
        (few / folder.name).mkdir(parents=True)
        for photo in sorted(folder.iterdir())[:15]:
            (few / folder.name / photo.name).symlink_to(photo)
    (few / "README.md").symlink_to(train_photos / "README.md")
    out = tmp_path / "run"
    proc = run(TRAIN + ["--epochs", "1", "--photos", few, "--photo-views", "2", "--output", out] + QUICK)
    from fashion_edge import photos
    n = len(photos.list_photos(few, photos.read_mapping(few)))
    n_val = n // 10
    # A tenth is held out and each of the rest is learnt in two framings (a photo where no
    # garment is found teaches nothing and is left out: among these, hats worn on a head,
    # which the region network takes for a person wearing nothing of the photo's classes).
    counts = re.search(r"photos: (\d+) training inputs, repeated \d+-\d+ times; (\d+) validation", proc.stderr)
    assert counts, proc.stderr[-500:]
    trained_on, held_out = int(counts[1]), int(counts[2])
    assert 0.85 * 2 * (n - n_val) <= trained_on <= 2 * (n - n_val) and 0.85 * n_val <= held_out <= n_val
    # ...and the held-out ones are scored each epoch.
    assert "photo_val_acc" in json.loads((out / "metrics.json").read_text())["metrics"][0]


def test_a_shoe_photo_may_be_any_footwear_class():
    from train.train import set_loss
    shoes = torch.zeros(1, 10, dtype=torch.uint8)
    shoes[0, [5, 7, 9]] = 1
    sure = torch.full((1, 10), -5.0)
    sneaker, sandal, spread, tshirt = sure.clone(), sure.clone(), sure.clone(), sure.clone()
    sneaker[0, 7], sandal[0, 5], tshirt[0, 0] = 5.0, 5.0, 5.0
    spread[0, [5, 7, 9]] = 5.0 - np.log(3)  # the same footwear mass, split evenly
    loss = {name: set_loss(logits, shoes, 0.1).item()
            for name, logits in dict(sneaker=sneaker, sandal=sandal, spread=spread, tshirt=tshirt).items()}
    # Being sure it is a sneaker costs about what hedging over three footwear classes costs
    # (only label smoothing leans towards the hedge)...
    assert loss["sneaker"] == pytest.approx(loss["sandal"]) and loss["sneaker"] < loss["spread"] + 0.25
    # ...and calling it a T-shirt costs much more.
    assert loss["tshirt"] > loss["sneaker"] + 5
    # With one acceptable class it is ordinary label-smoothed cross-entropy.
    one = torch.zeros(1, 10, dtype=torch.uint8)
    one[0, 3] = 1
    expected = torch.nn.functional.cross_entropy(sneaker, torch.tensor([3]), label_smoothing=0.1)
    assert set_loss(sneaker, one, 0.1).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ctrl_c_saves_and_resume_continues_exactly(data_dir, tmp_path):
    straight = tmp_path / "straight"
    run(TRAIN + ["--epochs", "3", "--width", "16", "--output", straight] + QUICK)

    broken = tmp_path / "broken"
    # Ctrl-C in a terminal reaches a process whose SIGINT is at its default; a test run started
    # in the background (`pytest &`) would otherwise hand the script an ignored SIGINT.
    proc = subprocess.Popen([str(c) for c in TRAIN + ["--epochs", "3", "--width", "16", "--output", broken] + QUICK],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (broken / "metrics.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "continue with --resume" in err and "Traceback" not in err
    done = torch.load(broken / "last.pt", weights_only=False)["epoch"]
    assert done < 3

    # As the help says: --output and --resume alone; the run's own settings come from last.pt.
    resumed = run(TRAIN + ["--output", broken, "--resume"])
    assert f"resumed from {broken / 'last.pt'} after epoch {done}" in resumed.stderr
    a = json.loads((straight / "metrics.json").read_text())
    b = json.loads((broken / "metrics.json").read_text())
    assert [m["epoch"] for m in b["metrics"]] == [1, 2, 3]
    for x, y in zip(a["metrics"], b["metrics"]):
        assert x["train_loss"] == pytest.approx(y["train_loss"], rel=1e-4)
        assert x["val_acc"] == pytest.approx(y["val_acc"], abs=1e-6)
    wa = torch.load(straight / "last.pt", weights_only=False)["model"]
    wb = torch.load(broken / "last.pt", weights_only=False)["model"]
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5) for k in wa)


def test_a_fine_tuned_run_averaged_with_its_start_exports_with_the_whole_recipe(trained, tmp_path):
    tuned = tmp_path / "tuned" / "last.pt"
    run(TRAIN + ["--epochs", "1", "--init", trained / "last.pt", "--output", tuned.parent] + QUICK)
    average = tmp_path / "average.pt"
    run(AVERAGE + [trained / "last.pt", tuned, "--output", average])
    start, end, mid = (torch.load(p, weights_only=False)["model"] for p in (trained / "last.pt", tuned, average))
    w = "classifier.1.weight"
    assert torch.allclose(mid[w], (start[w] + end[w]) / 2) and not torch.equal(start[w], end[w])
    # fine-tuned again from the average and averaged with it: the recipe keeps both rounds
    again = tmp_path / "again" / "last.pt"
    run(TRAIN + ["--epochs", "1", "--init", average, "--output", again.parent] + QUICK)
    run(AVERAGE + [average, again, "--weight", "0.3", "--output", tmp_path / "twice.pt"])
    out = tmp_path / "twice.onnx"
    run(EXPORT + ["--checkpoint", tmp_path / "twice.pt", "--output", out])
    steps = {p.key: p.value for p in onnx.load(str(out)).metadata_props}["recipe"].split("; ")
    assert [s.split()[2] for s in steps] == ["train.train", "train.train", "train.average", "train.train",
                                             "train.average", "export.to_onnx"]
    assert f"--init {trained / 'last.pt'}" in steps[1] and "--init" not in steps[0]
    assert f"--init {average}" in steps[3] and "--weight 0.3" in steps[4]


def test_export_fp32_matches_torch_and_keeps_the_contract(trained, tmp_path):
    out = tmp_path / "fp32.onnx"
    proc = run(EXPORT + ["--checkpoint", trained / "best.pt", "--output", out])
    assert "max |difference|" in proc.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["parity_max_abs_diff"] < 1e-4
    assert list(tmp_path.iterdir()) == [out, out.with_suffix(".json")] or sorted(tmp_path.iterdir()) == sorted([out, out.with_suffix(".json")])
    check_contract(out, batch=7)


def test_quantized_export_reports_both_precisions(trained, tmp_path):
    out = tmp_path / "int8.onnx"
    run(EXPORT + ["--checkpoint", trained / "best.pt", "--output", out, "--quantize", "--calibration-size", "200"])
    report = json.loads(out.with_suffix(".json").read_text())
    for key in ("fp32_test_accuracy_by_views", "int8_test_accuracy_by_views", "top1_agreement", "fp32_bytes",
                "int8_bytes", "fp32_latency_ms", "int8_latency_ms"):
        assert key in report, key
    assert set(report["int8_test_accuracy_by_views"]) == {"1", "2", "10"}
    # int8 weights take a quarter of the space; scales, zero points and the QDQ nodes of the
    # network's many small layers add the rest (3.1x smaller for the shipped model).
    assert report["int8_bytes"] < report["fp32_bytes"] / 2.5
    assert report["top1_agreement"] > 0.95
    model = check_contract(out, batch=3)
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    # The fp32 file is kept beside it, for the runtime's --model fp32 and for comparison.
    twin = check_contract(tmp_path / "int8-fp32.onnx", batch=3)
    assert not any(n.op_type == "QuantizeLinear" for n in twin.graph.node)


def test_a_model_file_rebuilds_the_checkpoint_it_was_exported_from(trained, tmp_path):
    out = tmp_path / "fp32.onnx"
    run(EXPORT + ["--checkpoint", trained / "best.pt", "--output", out])
    rebuilt = tmp_path / "rebuilt.pt"
    run([sys.executable, "-m", "export.from_onnx", out, "--output", rebuilt])
    from train.model import from_checkpoint
    a, b = (from_checkpoint(torch.load(p, weights_only=False)) for p in (trained / "best.pt", rebuilt))
    x = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(a.predict(x)[0], b.predict(x)[0], atol=1e-5)
    again = tmp_path / "again.onnx"
    run(EXPORT + ["--checkpoint", rebuilt, "--output", again])
    recipe = {p.key: p.value for p in onnx.load(str(again)).metadata_props}["recipe"]
    assert recipe.startswith("python -m train.train") and "export.from_onnx fp32.onnx" in recipe
    assert recipe.endswith("--limit 1000"), "a partial measurement says so in the recipe"


def test_the_shipped_model_keeps_the_contract():
    check_contract(ROOT / "fashion_edge" / "models" / "fashion-cnn.onnx", batch=5)


def test_prototypes_teach_a_model_file_unknown_and_change_no_other_answer(data_dir, tmp_path):
    from fashion_edge.model import Model
    catalogue = need(SHARED / "product-photos-dev", "the shared catalogue photos")
    shipped, model = ROOT / "fashion_edge" / "models" / "fashion-cnn.onnx", tmp_path / "m.onnx"
    model.write_bytes(shipped.read_bytes())
    run([sys.executable, "-m", "export.unknown_prototypes", model, "--photos", catalogue, "--limit", "2",
         "--fashion-mnist", "500", "--views", "1", "--data-dir", data_dir])
    recipe = Model(model).metadata["recipe"]
    assert recipe.startswith("python") and recipe.endswith(f"--photos {catalogue} --fashion-mnist 500 --views 1 --limit 2")
    garment, out_of_class = Model(model).prototypes
    # Fashion-MNIST's 10 classes and the 11 folders of garments; caps, shorts, a skirt and socks.
    assert garment.shape == (21, 256) and out_of_class.shape == (4, 256)
    assert np.allclose(np.linalg.norm(out_of_class, axis=1), 1, atol=1e-3)
    pixels = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    assert np.array_equal(Model(model).run(pixels)[0], Model(shipped).run(pixels)[0])


def test_prototypes_need_a_folder_of_no_class_and_say_so_before_the_work(tmp_path):
    shipped, model = ROOT / "fashion_edge" / "models" / "fashion-cnn.onnx", tmp_path / "m.onnx"
    model.write_bytes(shipped.read_bytes())
    (tmp_path / "set" / "shirt").mkdir(parents=True)
    (tmp_path / "set" / "README.md").write_text("| folder | ids |\n| --- | --- |\n| shirt | 6 Shirt |\n")
    proc = run([sys.executable, "-m", "export.unknown_prototypes", model, "--photos", tmp_path / "set"], check=1)
    assert proc.stderr.count("\n") == 1 and "no --photos folder is mapped to no class" in proc.stderr
    assert model.read_bytes() == shipped.read_bytes()


def check_contract(path, batch):
    """The promises of export.to_onnx that the runtime relies on."""
    import onnxruntime as ort
    assert not list(path.parent.glob("*.data")), "weights must live inside the .onnx file"
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["labels"]) == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                          "Sneaker", "Bag", "Ankle boot"]
    convention = json.loads(meta["input"])
    assert convention["shape"] == ["N", 1, 28, 28] and convention["range"] == [0.0, 1.0]
    assert 0 < float(meta["test_accuracy"]) <= 1 and re.search(r"train[./]train", meta["recipe"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, embedding = sess.run(["probabilities", "embedding"], {"pixels": np.random.rand(batch, 1, 28, 28).astype(np.float32)})
    assert probs.shape == (batch, 10) and embedding.shape[0] == batch
    assert np.allclose(probs.sum(1), 1, atol=1e-3)
    return model


@pytest.mark.parametrize("content, message", [
    (None, "no such checkpoint"),
    (b"not a checkpoint", "not a checkpoint of this project's FashionCNN"),
    ({"model": {"conv.weight": torch.zeros(3)}}, "not a checkpoint of this project's FashionCNN"),
])
def test_a_bad_checkpoint_is_one_line_and_leaves_nothing(tmp_path, content, message):
    ckpt = tmp_path / "bad.pt"
    if isinstance(content, bytes):
        ckpt.write_bytes(content)
    elif content is not None:
        torch.save(content, ckpt)
    out = tmp_path / "out" / "model.onnx"
    proc = run(EXPORT + ["--checkpoint", ckpt, "--output", out], check=1)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob("out/*"))


def test_training_refuses_bad_inputs_in_one_line_before_the_work(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    no_mapping = tmp_path / "photos"
    (no_mapping / "shirt").mkdir(parents=True)
    average = AVERAGE
    cases = [
        (TRAIN + ["--init", tmp_path / "missing.pt", "--output", tmp_path / "run"], 1, "no such checkpoint"),
        (TRAIN + ["--init", junk, "--output", tmp_path / "run"], 1, "not a checkpoint of this project's FashionCNN"),
        (TRAIN + ["--output", junk / "run"], 1, "cannot create the run folder"),
        (TRAIN + ["--photos", no_mapping, "--output", tmp_path / "run"] + QUICK, 1, "cannot read the class mapping"),
        (TRAIN + ["--epochs", "0", "--output", tmp_path / "run"], 2, "0 is not a positive whole number"),
        (TRAIN + ["--photo-weight", "1", "--output", tmp_path / "run"], 2, "1 is not a share from 0"),
        (average + [junk, junk, "--output", tmp_path / "avg.pt"], 1, "not a checkpoint of this project's FashionCNN"),
        (EXPORT + ["--checkpoint", junk, "--output", tmp_path / "m.onnx", "--calibration-size", "0"], 2,
         "0 is not a positive whole number"),
        (EXPORT + ["--checkpoint", junk, "--output", tmp_path / "m.onnx", "--min-confidence", "3"], 2,
         "3 is not a probability from 0 to 1"),
    ]
    for cmd, status, words in cases:
        proc = run(cmd, check=status)
        assert words in proc.stderr and "Traceback" not in proc.stderr, (cmd, proc.stderr)
    assert not (tmp_path / "avg.pt").exists()
