"""Train the garment-region network: which pixels of a photo are which garment a person wears.

    python -m train.regions --photos ../shared/data/street-photos/train --output runs/regions

It learns from street photos with per-pixel garment masks (codes 0-7, see REGIONS) and writes,
atomically after every epoch, OUTPUT/last.pt and metrics.json (per-region IoU on held-out photos).
export.regions_to_onnx turns last.pt into the packaged model.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from fashion_edge.garments import network_input
from train.train import positive, save_atomic

# The masks' codes, in order; the runtime reads these names from the ONNX file's metadata.
REGIONS = ["background", "upper", "lower", "dress", "footwear", "bag", "out-of-class", "person"]
IGNORE = 255  # pixels whose region is not known: they add nothing to the loss
ALONE_SIDE = 256  # garments alone are kept at this long side: the network never sees them larger


def load_model(checkpoint):
    """The RegionNet a train.regions checkpoint holds."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model = RegionNet(ckpt["width"], len(ckpt["regions"]), ckpt.get("upsample", "bilinear"))
    state = ckpt["model"]
    if "down5.0.0.weight" not in state:  # a network from before the whole-figure stage: it adds nothing yet
        new = model.state_dict()
        up3 = torch.zeros_like(new["up3.0.weight"])
        up3[:, :state["up3.0.weight"].shape[1]] = state["up3.0.weight"]
        state = {**{k: v for k, v in new.items() if k.startswith("down5")}, **state, "up3.0.weight": up3}
    model.load_state_dict(state)
    return model


def block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class RegionNet(nn.Module):
    """A small encoder-decoder: BGR [N, 3, H, W] in [0, 1] -> region logits [N, 8, H, W]; H, W multiples of 16.

    upsample: how the decoder doubles its maps. "nearest" copies values, which int8 arithmetic does
    alike on every CPU; onnxruntime's int8 "bilinear" rounds differently on ARM.
    """

    def __init__(self, width=16, regions=len(REGIONS), upsample="bilinear"):
        super().__init__()
        w = width
        self.upsample = upsample
        self.down1 = nn.Sequential(block(3, w, 2), block(w, w))                  # [N, w, H/2, W/2]
        self.down2 = nn.Sequential(block(w, 2 * w, 2), block(2 * w, 2 * w))      # [N, 2w, H/4, W/4]
        self.down3 = nn.Sequential(block(2 * w, 3 * w, 2), block(3 * w, 3 * w))  # [N, 3w, H/8, W/8]
        self.down4 = nn.Sequential(block(3 * w, 4 * w, 2), block(4 * w, 4 * w),
                                   block(4 * w, 4 * w))                          # [N, 4w, H/16, W/16]
        self.down5 = nn.Sequential(block(4 * w, 4 * w, 2), block(4 * w, 4 * w))  # [N, 4w, H/32, W/32]
        self.up3 = block(4 * w + 3 * w + 4 * w, 3 * w)                           # [N, 3w, H/8, W/8]
        self.up2 = block(3 * w + 2 * w, 2 * w)                                   # [N, 2w, H/4, W/4]
        self.head = nn.Conv2d(2 * w, regions, 1)                                 # [N, 8, H/4, W/4]

    def scores(self, x):
        """Region logits at a quarter of the photo's height and width: [N, 8, H/4, W/4]."""
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        # The whole figure in view: telling a dress from a long top over a skirt takes more than a torso's width.
        d5 = F.interpolate(self.down5(d4), scale_factor=4.0, mode=self.upsample)[:, :, :d3.shape[2], :d3.shape[3]]
        u3 = self.up3(torch.cat([F.interpolate(d4, scale_factor=2.0, mode=self.upsample), d3, d5], 1))
        u2 = self.up2(torch.cat([F.interpolate(u3, scale_factor=2.0, mode=self.upsample), d2], 1))
        return self.head(u2)

    def forward(self, x):
        return F.interpolate(self.scores(x), scale_factor=4.0, mode="bilinear")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", required=True, help="street-photos/train: photos/*.jpg and masks/*.png")
    p.add_argument("--output", required=True, help="run folder for last.pt and metrics.json")
    p.add_argument("--epochs", type=positive, default=60)
    p.add_argument("--batch-size", type=positive, default=16)
    p.add_argument("--size", type=positive, default=192, help="side of the square training crops (a multiple of 16)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle AdamW schedule")
    p.add_argument("--width", type=positive, default=16)
    p.add_argument("--upsample", choices=["nearest", "bilinear"], default="nearest",
                   help="how the decoder doubles its maps: nearest gives the int8 export the same answers on every CPU")
    p.add_argument("--alone", action="append", default=[],
                   help="photos of garments with no person (a folder-per-class set, or one folder of it), masked by "
                        "the runtime's own segmentation; they teach that a garment alone wears no skin (repeatable)")
    p.add_argument("--worn", action="append", default=[],
                   help="catalogue shots of one garment worn by a model (one folder of a folder-per-class set), "
                        "labelled by --teacher's regions, with dress pixels taken for the folder's garment (repeatable)")
    p.add_argument("--teacher", help="a train.regions checkpoint (last.pt) whose regions label the --worn photos")
    p.add_argument("--worn-limit", type=positive, default=150,
                   help="only the first N photos of each --worn folder, by name: the rest stay unseen, to measure on")
    p.add_argument("--dress-weight", type=float, default=1.0, help="multiplies the dress region's weight in the loss")
    p.add_argument("--recalibrate", action=argparse.BooleanOptionalAction, default=True,
                   help="measure batch-norm statistics again on whole photos after the last epoch")
    p.add_argument("--zoom", type=float, default=3.0,
                   help="largest zoom of a crop of people: 1 shows the photo's whole height in the crop, 3 a third of it")
    p.add_argument("--plain-background", type=float, default=0.4,
                   help="probability of putting the person on a plain backdrop, as catalogue shots are")
    p.add_argument("--plain-zoom", type=float, default=3.0,
                   help="largest zoom of a crop on a plain backdrop: catalogue shots come closer than a camera in the street")
    p.add_argument("--init", help="start from this last.pt's weights, not from scratch")
    p.add_argument("--val-photos", type=positive, default=40, help="photos held out to measure IoU")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--limit", type=positive, help="use only the first N photos (quick runs)")
    args = p.parse_args(argv)
    if args.worn and not args.teacher:
        p.error("--worn needs --teacher, the region network that labels those photos")
    return args


def load(folder, limit=None):
    """Lists of BGR photos and their uint8 masks, sorted by name."""
    folder = Path(folder)
    names = sorted(p.name for p in (folder / "photos").glob("*.jpg"))[:limit]
    if not names or not (folder / "masks").is_dir():
        sys.exit(f"error: {folder}: no photos/*.jpg with masks/*.png beside them; pass street-photos/train")
    photos = [cv2.imread(str(folder / "photos" / n)) for n in names]
    masks = [cv2.imread(str(folder / "masks" / n.replace(".jpg", ".png")), cv2.IMREAD_GRAYSCALE) for n in names]
    return photos, masks


def alone_photos(sources):
    """Lists of BGR photos of garments alone and masks of their region (IGNORE where the class has none)."""
    from fashion_edge import garments, images, photos as sets, preprocess
    found, masks = [], []
    for source in map(Path, sources):
        whole = (source / "README.md").exists()
        mapping = sets.read_mapping(source if whole else source.parent)
        if not whole:
            mapping = {source.name: mapping[source.name]}
        for path, ids in tqdm(sets.list_photos(source if whole else source.parent, mapping), desc=source.name, leave=False):
            image = images.load(path)
            image = cv2.resize(image, None, fx=min(1, ALONE_SIDE / max(image.shape[:2])), fy=min(1, ALONE_SIDE / max(image.shape[:2])),
                               interpolation=cv2.INTER_AREA)
            prepared = preprocess.prepare(image)
            code = next((REGIONS.index(n) for n, c in garments.CLASSES.items() if ids and set(ids) <= set(c)), IGNORE)
            mask = cv2.resize(prepared.mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
            found.append(image)
            masks.append(np.where(mask > 0, code, 0).astype(np.uint8))
    return found, masks


def worn_photos(folders, teacher, limit):
    """Lists of BGR catalogue shots and the teacher's region codes for them, where it sees a person.

    Many of the shop's tops are long tunics, which the network took for dresses; a shot's folder
    says which garment it shows, so where that garment is an upper-body one, dress pixels are
    relabelled as upper body, and elsewhere they are left out of the loss.
    """
    from fashion_edge import garments, photos as sets
    found, masks = [], []
    for folder in map(Path, folders):
        ids = sets.read_mapping(folder.parent)[folder.name]
        region = next((n for n, c in garments.CLASSES.items() if ids and set(ids) <= set(c)), None)
        for path in sorted(folder.glob("*.jpg"))[:limit]:
            photo = cv2.imread(str(path))
            codes = regions_at_runtime_size(teacher, photo)
            if not garments.person_in_view(np.bincount(codes.ravel(), minlength=len(REGIONS)) / codes.size, REGIONS):
                continue
            codes[codes == REGIONS.index("dress")] = REGIONS.index("upper") if region == "upper" else IGNORE
            found.append(photo)
            masks.append(cv2.resize(codes, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_NEAREST))
    return found, masks


@torch.no_grad()
def regions_at_runtime_size(model, photo):
    """uint8 region codes [h, w] of a BGR photo seen as the runtime sees it, at RUN_SIDE on its long side."""
    model.eval()
    x, (h, w) = network_input(photo)
    return model(torch.from_numpy(x))[0].argmax(0).numpy()[:h, :w].astype(np.uint8)


def sample_alone(photo, mask, size, rng):
    """One augmented square crop of a garment alone: the whole photo, smaller or larger, placed anywhere."""
    scale = size / max(mask.shape) * rng.uniform(0.5, 1.2)
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_NEAREST)
    h, w = mask.shape
    top, left = rng.integers(0, max(1, size - h + 1)), rng.integers(0, max(1, size - w + 1))
    photo = cv2.copyMakeBorder(photo, top, max(0, size - h - top), left, max(0, size - w - left), cv2.BORDER_REPLICATE)
    mask = cv2.copyMakeBorder(mask, top, max(0, size - h - top), left, max(0, size - w - left), cv2.BORDER_CONSTANT, value=0)
    photo, mask = photo[:size, :size], mask[:size, :size]
    if rng.random() < 0.5:
        photo, mask = photo[:, ::-1], mask[:, ::-1]
    photo = np.clip(photo * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25), 0, 255)
    return photo.astype(np.float32) / 255, mask.astype(np.int64)


def plain_backdrop(photo, mask, rng):
    """The person on a flat light or grey backdrop with a little shading, as in catalogue and studio shots."""
    h, w = mask.shape
    level = rng.choice([rng.uniform(225, 255), rng.uniform(120, 225)])
    tint = level + rng.uniform(-12, 12, 3)
    ramp = np.linspace(-1, 1, h)[:, None, None] * rng.uniform(-15, 15)
    backdrop = np.clip(tint[None, None] + ramp + rng.normal(0, 2, (h, w, 1)), 0, 255)
    keep = (mask > 0)[..., None]
    return np.where(keep, photo, backdrop).astype(np.uint8)


def sample(photo, mask, size, rng, plain_p, zoom, plain_zoom):
    """One augmented square crop, zoomed 0.7 to `zoom` times (at 1 the photo's height fills the crop; up to
    `plain_zoom` on a plain backdrop): from the whole person to a close-up of the upper body."""
    if rng.random() < plain_p:
        photo, zoom = plain_backdrop(photo, mask, rng), plain_zoom
    h, w = mask.shape
    scale = size / h * rng.uniform(0.7, zoom)
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_NEAREST)
    pad = size
    photo = cv2.copyMakeBorder(photo, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    mask = cv2.copyMakeBorder(mask, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.mean(), xs.mean()) if len(ys) else (mask.shape[0] / 2, mask.shape[1] / 2)
    spread_y = max(1.0, (ys.max() - ys.min()) / 2 if len(ys) else 1.0)
    y = int(np.clip(cy + rng.uniform(-1, 0.6) * spread_y - size / 2, 0, mask.shape[0] - size))
    x = int(np.clip(cx + rng.uniform(-0.4, 0.4) * size - size / 2, 0, mask.shape[1] - size))
    photo, mask = photo[y:y + size, x:x + size], mask[y:y + size, x:x + size]
    if rng.random() < 0.5:
        photo, mask = photo[:, ::-1], mask[:, ::-1]
    photo = np.clip(photo * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25), 0, 255)
    return photo.astype(np.float32) / 255, mask.astype(np.int64)


def batches(people, alone, args, rng):
    """Batches of crops: every photo of people once, and as many photos of garments alone drawn at random."""
    draw = rng.permutation(len(alone[0]))[:len(people[0])] if alone[0] else []
    items = [(0, i) for i in range(len(people[0]))] + [(1, i) for i in draw]
    order = rng.permutation(len(items))
    for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
        crops = []
        for kind, i in (items[j] for j in order[start:start + args.batch_size]):
            crops.append(sample(people[0][i], people[1][i], args.size, rng, args.plain_background, args.zoom,
                                args.plain_zoom) if kind == 0
                         else sample_alone(alone[0][i], alone[1][i], args.size, rng))
        x = torch.from_numpy(np.stack([c[0] for c in crops])).permute(0, 3, 1, 2).contiguous()
        yield x, torch.from_numpy(np.stack([c[1] for c in crops]))


def class_weights(masks):
    """Rare regions (footwear, bags) weigh more: inverse square root of each code's pixel share."""
    counts = np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=len(REGIONS)).astype(np.float64)
    weights = 1 / np.sqrt(counts / counts.sum() + 1e-4)
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def iou(codes_of, photos, masks):
    """Per-region intersection over union on whole photos; codes_of(photo) gives a photo's region
    codes as the runtime sees it (see regions_at_runtime_size)."""
    inter, union = np.zeros(len(REGIONS)), np.zeros(len(REGIONS))
    for photo, mask in zip(photos, masks):
        pred = codes_of(photo)
        mask = cv2.resize(mask, (pred.shape[1], pred.shape[0]), interpolation=cv2.INTER_NEAREST)
        for c in range(len(REGIONS)):
            inter[c] += np.sum((pred == c) & (mask == c))
            union[c] += np.sum((pred == c) | (mask == c))
    return {name: round(float(i / u), 4) if u else None for name, i, u in zip(REGIONS, inter, union)}


@torch.no_grad()
def recalibrate(model, photos):
    """Batch-norm statistics measured again on whole photos at the runtime's size. Training sees
    zoomed square crops, whose statistics misled the network on whole photos (IoU fell by a tenth)."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over all the photos
    model.train()
    for photo in photos:
        model(torch.from_numpy(network_input(photo)[0]))


def training_sets(args):
    """(held-out photos and masks, training photos of people and masks, photos of garments alone and
    masks, the loss's region weights)."""
    photos, masks = load(args.photos, args.limit)
    # The photos are in a random order already (their README says how).
    val, train = (photos[:args.val_photos], masks[:args.val_photos]), (photos[args.val_photos:], masks[args.val_photos:])
    weights = class_weights(train[1])
    weights[REGIONS.index("dress")] *= args.dress_weight
    if args.worn:
        worn = worn_photos(args.worn, load_model(args.teacher), args.worn_limit)
        print(f"{len(worn[0])} catalogue shots of worn garments labelled by {args.teacher}", file=sys.stderr)
        train = (train[0] + worn[0], train[1] + worn[1])
    return val, train, alone_photos(args.alone), weights


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    val, (train_photos, train_masks), alone, weights = training_sets(args)
    model = RegionNet(args.width, upsample=args.upsample)
    if args.init:
        model.load_state_dict(load_model(args.init).state_dict())
    steps = args.epochs * ((len(train_photos) + min(len(train_photos), len(alone[0]))) // args.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    metrics = []
    for epoch in range(1, args.epochs + 1):
        start, losses = time.time(), []
        for x, y in batches((train_photos, train_masks), alone, args, rng):
            loss = F.cross_entropy(model(x), y, weight=weights, ignore_index=IGNORE)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        row = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "seconds": round(time.time() - start, 1)}
        if epoch == args.epochs and args.recalibrate:
            recalibrate(model, train_photos + alone[0][:len(train_photos)])
        if epoch % 5 == 0 or epoch == args.epochs:
            row["val_iou"] = iou(lambda photo: regions_at_runtime_size(model, photo), *val)
            model.train()
        metrics.append(row)
        print(json.dumps(row), flush=True)
        save_atomic({"model": model.state_dict(), "width": args.width, "upsample": args.upsample, "regions": REGIONS,
                     "args": vars(args)},
                    out / "last.pt")
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
