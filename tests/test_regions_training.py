"""Training and export of the garment-region network, run as a user runs them, on the real photos."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, SHARED, need


def run(cmd, check=0):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == check, f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def street():
    return need(SHARED / "street-photos" / "train", "the shared street photos")


@pytest.fixture(scope="module")
def catalogue():
    return need(SHARED / "product-photos-train", "the shared catalogue photos")


class DressAndSkin(torch.nn.Module):
    """A teacher that sees a person (skin and hair in the top fifth) in a dress (everything else)."""

    def forward(self, x):
        from train.regions import REGIONS
        logits = torch.zeros(x.shape[0], len(REGIONS), *x.shape[2:])
        logits[:, REGIONS.index("dress")] = 1
        logits[:, REGIONS.index("person"), :x.shape[2] // 5] = 2
        return logits


def test_a_catalogue_shot_s_folder_corrects_its_teacher_s_dress(catalogue):
    from train.regions import IGNORE, REGIONS, worn_photos
    for folder, dress_becomes in [("top", REGIONS.index("upper")), ("trousers", IGNORE)]:
        photos, masks = worn_photos([catalogue / folder], DressAndSkin(), limit=3)
        assert len(photos) == 3 and all(m.shape == p.shape[:2] for p, m in zip(photos, masks))
        codes = np.concatenate([m.ravel() for m in masks])
        assert set(np.unique(codes)) == {dress_becomes, REGIONS.index("person")}, folder


def test_a_short_region_run_exports_a_network_the_runtime_uses(street, catalogue, tmp_path):
    from fashion_edge.garments import RegionFinder
    quick = ["--photos", street, "--limit", "48", "--val-photos", "8", "--epochs", "1", "--size", "64",
             "--alone", catalogue / "bag"]
    run([sys.executable, "-m", "train.regions"] + quick + ["--output", tmp_path / "teacher"])
    run([sys.executable, "-m", "train.regions"] + quick + ["--worn", catalogue / "top", "--worn-limit", "8",
        "--teacher", tmp_path / "teacher" / "last.pt", "--init", tmp_path / "teacher" / "last.pt", "--output", tmp_path / "run"])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics[-1]["epoch"] == 1 and "upper" in metrics[-1]["val_iou"]
    run([sys.executable, "-m", "export.regions_to_onnx", tmp_path / "run" / "last.pt", "--output", tmp_path / "r.onnx"])
    finder = RegionFinder(tmp_path / "r.onnx")
    assert "--worn" in finder.session.get_modelmeta().custom_metadata_map["recipe"]
    photo = np.full((480, 320, 3), 128, np.uint8)
    assert finder.scores(photo).shape == (len(finder.names), 256, 171)


def test_worn_shots_without_a_teacher_are_a_usage_error(street, catalogue, tmp_path):
    proc = run([sys.executable, "-m", "train.regions", "--photos", street, "--worn", catalogue / "top",
                "--output", tmp_path], check=2)
    assert proc.stderr.strip().endswith("error: --worn needs --teacher, the region network that labels those photos")
    assert not list(tmp_path.iterdir())


def test_region_scores_are_scaled_up_as_training_scaled_them():
    import torch.nn.functional as F
    from fashion_edge.garments import upsampled
    scores = np.random.default_rng(0).integers(0, 256, (8, 12, 9)).astype(np.uint8)
    torch_up = F.interpolate(torch.from_numpy(scores.astype(np.float32))[None], scale_factor=4.0, mode="bilinear")[0]
    assert np.array_equal(upsampled(scores), torch_up.numpy())


def test_the_recipe_in_a_region_model_reruns_the_same_training(tmp_path):
    import shlex
    from export.regions_to_onnx import recipe
    from train.regions import parse_args
    args = vars(parse_args(["--photos", "p", "--output", str(tmp_path), "--no-recalibrate", "--alone", "a",
                            "--alone", "b", "--worn", "w", "--teacher", "t.pt", "--upsample", "bilinear"]))
    assert vars(parse_args(shlex.split(recipe(args))[3:])) == args


def test_a_network_from_before_the_whole_figure_stage_starts_as_it_was(tmp_path):
    from train.regions import REGIONS, RegionNet, load_model
    torch.manual_seed(0)
    state = RegionNet(width=4, upsample="nearest").state_dict()
    old = {k: v for k, v in state.items() if not k.startswith("down5")}
    old["up3.0.weight"] = old["up3.0.weight"][:, :4 * 4 + 3 * 4].clone()  # its decoder took d4 and d3 only
    torch.save({"model": old, "width": 4, "regions": REGIONS, "upsample": "nearest"}, tmp_path / "last.pt")
    model = load_model(tmp_path / "last.pt").eval()
    x = torch.rand(1, 3, 80, 48)  # multiples of 16, not of 32
    with torch.no_grad():
        before = model.scores(x)
        for p in model.down5.parameters():
            p.add_(torch.randn_like(p))
        after = model.scores(x)
    assert before.shape == (1, len(REGIONS), 20, 12) and torch.equal(before, after)
    assert torch.equal(model.up3[0].weight[:, :28], old["up3.0.weight"])


def test_street_crops_zoom_no_closer_than_zoom_and_plain_backdrop_crops_up_to_plain_zoom():
    from train.regions import sample
    photo = np.full((480, 320, 3), 128, np.uint8)
    mask = np.zeros((480, 320), np.uint8)
    mask[:, 140:180] = 1  # a figure 40 pixels wide, the photo's whole height
    rng = np.random.default_rng(0)

    def widest(plain_p):  # the figure's widest row over 40 crops of 192 pixels: 40 * 192 / 480 * zoom at most
        crops = [sample(photo, mask, 192, rng, plain_p, zoom=1.6, plain_zoom=3.0)[1] for _ in range(40)]
        return max(int((c > 0).sum(1).max()) for c in crops)

    assert 20 <= widest(plain_p=0.0) <= 26
    assert widest(plain_p=1.0) > 30
