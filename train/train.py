"""Train the Fashion-MNIST CNN.

    python -m train.train --epochs 40 --output runs/exp1
    python -m train.train --output runs/exp1 --resume          # continue where last.pt stopped

Writes into --output, after every epoch and atomically: last.pt, best.pt (by validation
accuracy) and metrics.json; at the end curves.png, confusion.png and the test accuracy.
"""
import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from fashion_edge import dataset, files
from fashion_edge.preprocess import GARMENT_FLOOR, GARMENT_RANGE
from train.model import FashionCNN, from_checkpoint

SCAN_BACKGROUND = 8 / 255  # a scan's pixels at or below this are its black background, not garment


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def share(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share from 0 up to (not including) 1")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="folder with the four Fashion-MNIST IDX files (default: searched)")
    p.add_argument("--photos", action="append", default=[],
                   help="folder-per-class real photos to learn from beside Fashion-MNIST (repeat for several sets)")
    p.add_argument("--street", help="photos of people with garment masks and labels.json (street-photos/train), "
                   "learned garment by garment")
    p.add_argument("--photo-weight", type=share, default=0.25, help="share of each epoch's images that are photos")
    p.add_argument("--photo-views", type=positive, default=5, help="differently framed copies of each training photo")
    p.add_argument("--init", help="start from this checkpoint's weights (fine-tuning), not from scratch; "
                   "the network takes its width")
    p.add_argument("--freeze-bn", action="store_true",
                   help="keep batch-norm statistics as --init has them: a fine-tune of a model read back by "
                        "export.from_onnx (folded, identity batch norms) then starts from that model's function")
    p.add_argument("--epochs", type=positive, default=40)
    p.add_argument("--batch-size", type=positive, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--erase", type=float, default=0.3, help="probability of random erasing per image")
    p.add_argument("--photo-look", type=float, default=0.3,
                   help="probability of drawing an image the way photos are drawn (see photo_look)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the last fully connected layer")
    p.add_argument("--width", type=positive, default=16, help="channels of the first residual stage (then 2x, 4x)")
    p.add_argument("--ema", type=float, default=0.999, help="decay of the weight average that is evaluated and saved")
    p.add_argument("--val-size", type=positive, default=5000, help="training images held out for validation")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 mixed precision: about 1.8x faster on CPUs with AVX-512 BF16 or AMX and on "
                        "recent GPUs, slower on other CPUs")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--output", required=True, help="run folder for checkpoints, metrics and plots")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT/last.pt, with the settings the run was started with")
    p.add_argument("--limit", type=positive, help="use only the first N training images (quick runs)")
    return p.parse_args(argv)


def as_flags(train_args):
    """A checkpoint's train.py arguments as the flags that give them back (a switch that was on is bare)."""
    # `is` tests: 0 == False, and --erase 0 must not be dropped for the default to creep back in.
    flags = []
    for k, value in train_args.items():
        for v in value if isinstance(value, list) else [value]:  # a repeatable flag, once per item
            if v is not None and v is not False and k not in ("resume", "data_dir"):
                flags.append(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}"))
    return " ".join(flags)


def pick_device(name):
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def photo_look(x, gen, p):
    """Draw a share of the batch the way preprocess.render draws a photo's garment. Without this
    the network can tell a photo from a scan by its brightness alone, and learns that photos are
    never bags or sandals."""
    garment = x > SCAN_BACKGROUND
    lo = torch.where(garment, x, torch.ones_like(x)).amin((1, 2, 3), keepdim=True)
    hi = x.amax((1, 2, 3), keepdim=True)
    stretched = ((x - lo) / (hi - lo).clamp(min=1e-3)).clamp(0, 1)
    drawn = torch.where(garment, (GARMENT_FLOOR + GARMENT_RANGE * stretched) / 255, 0)
    pick = (torch.rand(x.shape[0], generator=gen) < p).to(x.device)[:, None, None, None]
    return torch.where(pick, drawn, x)


def augment(x, gen, erase_p, photo_look_p):
    """Random shift by up to 2 pixels, horizontal flip, photo look and random erasing, on a whole batch."""
    if photo_look_p:  # skipped at 0 so that runs without it draw the same random numbers as before it existed
        x = photo_look(x, gen, photo_look_p)
    n = x.shape[0]
    padded = F.pad(x, (2, 2, 2, 2))  # [N, 1, 32, 32]
    oy, ox = torch.randint(0, 5, (2, n, 1), generator=gen)
    idx = torch.arange(28)
    rows, cols = (oy + idx).to(x.device), (ox + idx).to(x.device)  # [N, 28]
    x = padded[torch.arange(n, device=x.device)[:, None, None], 0, rows[:, :, None], cols[:, None, :]][:, None]
    flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)[:, None, None, None]
    x = torch.where(flip, x.flip(3), x)
    # Random erasing: a rectangle of 2-40% of the image, zeroed (the background value).
    area = torch.empty(n).uniform_(0.02, 0.4, generator=gen) * 784
    ratio = torch.exp(torch.empty(n).uniform_(-1.2, 1.2, generator=gen))
    h = (area * ratio).sqrt().clamp(1, 28).long()
    w = (area / ratio).sqrt().clamp(1, 28).long()
    y0 = (torch.rand(n, generator=gen) * (29 - h)).long()
    x0 = (torch.rand(n, generator=gen) * (29 - w)).long()
    keep = torch.rand(n, generator=gen) >= erase_p
    ys, xs = idx[None, :, None], idx[None, None, :]
    box = (ys >= y0[:, None, None]) & (ys < (y0 + h)[:, None, None]) & (xs >= x0[:, None, None]) & (xs < (x0 + w)[:, None, None])
    box &= ~keep[:, None, None]
    return x * (~box).to(x.device)[:, None].float()


def set_loss(logits, y, smoothing):
    """Label-smoothed cross-entropy against label sets: y is a [N, 10] 0/1 mask of acceptable classes.

    A row with several ones (a shoe photo may be a Sandal, Sneaker or Ankle boot) is right when
    the set as a whole is likely: the loss is -log of the set's summed probability, so the
    network may be sure of one footwear class instead of spreading itself evenly over three
    (and falling below the "unknown" threshold). An all-zero row (a hat: no class fits) asks
    for the uniform distribution. With one class per row this is plain label smoothing.
    """
    log_p = F.log_softmax(logits, 1)
    y = y.bool()
    has_class = y.any(1)
    # An empty set would sum to log(0) and poison the gradient with NaN even where torch.where
    # discards it; counting every class instead gives log(1), a constant, for those rows.
    in_set = torch.logsumexp(log_p.masked_fill(~(y | ~has_class[:, None]), float("-inf")), 1)
    uniform = log_p.mean(1)
    return -((1 - smoothing) * torch.where(has_class, in_set, uniform) + smoothing * uniform).mean()


def ema_update(decay):
    """Exponential moving average whose decay ramps up, so short runs are averaged over a short past."""
    def update(averaged, current, n):
        d = torch.clamp((1 + n) / (10 + n), max=decay)
        return d * averaged + (1 - d) * current
    return update


def train_one_epoch(model, ema, batches, optimizer, scheduler, device, gen, args, desc):
    model.train()
    if args.freeze_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(batches, desc=desc, leave=False, dynamic_ncols=True)
    for x, y in bar:
        x, y = x.to(device), y.to(device)
        x = augment(x, gen, args.erase, args.photo_look)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x)
        loss = set_loss(logits.float(), y, args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model)
        total_loss += loss.item() * len(x)
        correct += y[torch.arange(len(x)), logits.argmax(1)].sum().item()
        seen += len(x)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return total_loss / seen, correct / seen


@torch.no_grad()
def evaluate(model, x, y, device, batch_size=1000):
    """Accuracy and predictions on uint8 images [N, 28, 28] with 0/1 label masks [N, 10]."""
    model.eval()
    preds = torch.cat([model(to_pixels(x[i:i + batch_size]).to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])
    in_dist = y.sum(1) > 0
    correct = y[torch.arange(len(y)), preds].bool()
    return correct[in_dist].float().mean().item(), preds


def to_pixels(images):
    """uint8 [N, 28, 28] -> float [N, 1, 28, 28] in [0, 1]."""
    return torch.as_tensor(images).float().div(255).unsqueeze(1)


def one_hot(labels):
    return F.one_hot(torch.as_tensor(labels, dtype=torch.long), 10).to(torch.uint8)


def prepare_photos(items, progress=False, augment=None, views=1, seed=0):
    """Model inputs for [(path, ids)]: (uint8 [N, 28, 28], 0/1 masks of acceptable ids [N, 10]).

    Each photo is prepared as the runtime prepares it (garments.prepare, with the packaged
    garment-region network): where a person wears the garment, the input is the worn garment
    whose region admits the photo's classes. With views > 1, each photo also appears views - 1
    more times through augment(image, rng), a random change of framing. Photos in which no
    such garment is found are left out: there is nothing to learn from them.
    """
    from fashion_edge import garments, images  # OpenCV and onnxruntime, only when photos are used
    finder = garments.RegionFinder()
    rng = np.random.default_rng(seed)
    if progress:
        items = tqdm(items, desc="preparing photos", leave=False)
    inputs, masks = [], []
    for path, ids in items:
        try:
            image = images.load(path)
        except images.ImageError:
            continue
        for view in range(views):
            prepared = worn_garment(garments.prepare(image if view == 0 else augment(image, rng), finder), ids)
            if prepared is not None and prepared.found:
                inputs.append((prepared.pixels * 255).round().astype(np.uint8))
                masks.append(np.isin(np.arange(10), ids).astype(np.uint8))
    return np.stack(inputs), np.stack(masks)


def worn_garment(prepared, ids):
    """The garment a photo labelled `ids` is of: the photo's only one, or the largest worn garment
    whose region admits those classes; None where a person wears none such."""
    from fashion_edge.garments import CLASSES
    if not prepared.garments:
        return prepared
    fits = [g for g in prepared.garments if set(CLASSES[g.region.name]) & set(ids)]
    return fits[0] if fits else None


def street_garments(folder):
    """Model inputs for every garment in street photos with masks (street-photos/train): each
    group's mask pixels rendered as the runtime renders a worn garment, its classes those of the
    labelled garment that most of those pixels belong to."""
    import cv2
    from fashion_edge import garments, preprocess
    folder = Path(folder)
    labels = json.loads((folder / "labels.json").read_text())
    inputs, masks = [], []
    for name, entry in tqdm(sorted(labels.items()), desc="street photos", leave=False):
        bgr = cv2.imread(str(folder / "photos" / name))
        codes = cv2.imread(str(folder / "masks" / name.replace(".jpg", ".png")), cv2.IMREAD_GRAYSCALE)
        for code in range(1, 6):  # upper, lower, dress, footwear, bag: the in-class groups
            mask = (codes == code).astype(np.uint8) * 255
            if mask.mean() < 255 * garments.MIN_GARMENT:
                continue
            ids = street_ids(mask, entry["garments"])
            if ids:
                box = garments.box_of(mask, bgr.shape[1], bgr.shape[0])
                inputs.append((preprocess.render(bgr, mask, box).pixels * 255).round().astype(np.uint8))
                masks.append(np.isin(np.arange(10), ids).astype(np.uint8))
    return np.stack(inputs), np.stack(masks)


def street_ids(mask, labelled):
    """The class ids of the labelled garment whose box holds most of the mask's pixels."""
    def inside(g):
        x, y, w, h = g["box"]
        return np.count_nonzero(mask[y:y + h, x:x + w])
    best = max(labelled, key=inside, default=None)
    return best["class_ids"] if best is not None and inside(best) else []


def load_photos(folder, seed, views, val_share=0.1):
    """A folder-per-class photo set as model inputs, split by photo into train and validation."""
    from fashion_edge import photos  # needs OpenCV, only when photos are used
    items = photos.list_photos(folder, photos.read_mapping(folder))
    order = np.random.default_rng(seed).permutation(len(items))
    n_val = int(len(items) * val_share)
    val = prepare_photos([items[i] for i in order[:n_val]])
    train = prepare_photos([items[i] for i in order[n_val:]], progress=True, augment=reframe, views=views, seed=seed)
    return train, val


def photo_repeats(masks, share, n_scans):
    """How often each photo is repeated so that photos make up `share` of an epoch beside n_scans
    scans. Photos are few and their classes uneven (795 T-shirts, 198 shoes), so each photo is
    repeated in proportion to 1/sqrt(its class's count): a class's share of the epoch grows
    with the square root of its count, so rare classes are seen more often without a few shoe
    photos being repeated until they are memorized."""
    _, group, counts = np.unique(masks, axis=0, return_inverse=True, return_counts=True)
    weight = 1 / np.sqrt(counts[group.ravel()])
    wanted = share * n_scans / (1 - share)
    return np.maximum(1, np.round(weight * wanted / weight.sum())).astype(np.int64)


def reframe(image, rng):
    """The same photo framed differently: a random crop of 80-100% of each side, turned up to 10 degrees."""
    import cv2
    h, w = image.shape[:2]
    ch, cw = int(h * rng.uniform(0.8, 1)), int(w * rng.uniform(0.8, 1))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = image[y:y + ch, x:x + cw]
    turn = cv2.getRotationMatrix2D((cw / 2, ch / 2), rng.uniform(-10, 10), 1.0)
    return cv2.warpAffine(crop, turn, (cw, ch), borderMode=cv2.BORDER_REFLECT)


def load_checkpoint(path):
    """The checkpoint this script saved at path. Any other file ends the script with one line
    saying what is wrong, for train.py --init, average.py and export.to_onnx alike."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        from_checkpoint(ckpt)  # holds this project's network, or fails here
    except FileNotFoundError:
        sys.exit(f"error: {path}: no such checkpoint; train one with python -m train.train --output DIR")
    except (RuntimeError, KeyError, TypeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
        reason = str(e).strip().splitlines()[0][:160]
        sys.exit(f"error: {path}: not a checkpoint of this project's FashionCNN ({reason}); "
                 "pass best.pt or last.pt from train.train")
    return ckpt


def save_atomic(obj, path):
    with files.replacing(path) as tmp:
        if path.suffix == ".json":
            tmp.write_text(json.dumps(obj, indent=2))
        else:
            torch.save(obj, tmp)


def plot(metrics, out, test_preds=None, test_labels=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [m["epoch"] for m in metrics]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [m["train_loss"] for m in metrics], label="train loss")
    a.set_xlabel("epoch"), a.legend()
    b.plot(epochs, [m["train_acc"] for m in metrics], label="train acc")
    b.plot(epochs, [m["val_acc"] for m in metrics], label="val acc")
    if "photo_val_acc" in metrics[-1]:
        b.plot(epochs, [m["photo_val_acc"] for m in metrics], label="photo val acc")
    b.set_xlabel("epoch"), b.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    if test_preds is not None:
        from fashion_edge.report import save_confusion_png
        save_confusion_png(test_labels, test_preds, out / "confusion.png", title="Fashion-MNIST test set")


def settings(args):
    """(args, last, init): the run's settings, the checkpoint it resumes, the one it starts from."""
    out = Path(args.output)
    last = init = None
    if args.resume:
        if not (out / "last.pt").exists():
            sys.exit(f"error: {out / 'last.pt'}: nothing to resume; start the run without --resume")
        last = load_checkpoint(out / "last.pt")
        # The run goes on as it was started (width, photos, schedule...); only where it runs may change.
        here = {k: getattr(args, k) for k in ("output", "resume", "data_dir", "device", "workers")}
        args = argparse.Namespace(**{**vars(args), **last["args"], **here})
    if args.init:
        init = load_checkpoint(args.init)
        args.width = init["args"].get("width", args.width)  # its weights fit no other width
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        sys.exit(f"error: {out}: cannot create the run folder ({e.strerror}); pass another --output")
    return args, last, init


def load_data(args):
    """(train_x, train_y, val_x, val_y, photo_val, test_images, test_labels); photo_val is None without --photos."""
    try:
        images, labels = dataset.load("train", args.data_dir)
        test_images, test_labels = dataset.load("test", args.data_dir)
    except dataset.DataError as e:
        sys.exit(f"error: {e}")
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    n_val = min(args.val_size, len(images) // 10)
    order = np.random.default_rng(args.seed).permutation(len(images))
    val_x, val_y = images[order[:n_val]], one_hot(labels[order[:n_val]])
    train_x, train_y = to_pixels(images[order[n_val:]]), one_hot(labels[order[n_val:]])
    if not args.photos and not args.street:
        return train_x, train_y, val_x, val_y, None, test_images, test_labels
    from fashion_edge.photos import PhotoSetError  # needs OpenCV, only when photos are used
    try:
        sets = [load_photos(folder, args.seed, args.photo_views) for folder in args.photos]
    except PhotoSetError as e:
        sys.exit(f"error: {e}")
    if args.street:
        sets.append((street_garments(args.street), None))
    photo_train = tuple(np.concatenate([train[i] for train, _ in sets]) for i in (0, 1))
    photo_val = tuple(np.concatenate([val[i] for _, val in sets if val is not None]) for i in (0, 1)) \
        if args.photos else None
    reps = torch.as_tensor(photo_repeats(photo_train[1], args.photo_weight, len(train_x)))
    train_x = torch.cat([train_x, to_pixels(photo_train[0]).repeat_interleave(reps, 0)])
    train_y = torch.cat([train_y, torch.as_tensor(photo_train[1]).repeat_interleave(reps, 0)])
    print(f"photos: {len(photo_train[0])} training inputs, repeated {reps.min()}-{reps.max()} times; "
          f"{len(photo_val[0]) if photo_val else 0} validation", file=sys.stderr)
    return train_x, train_y, val_x, val_y, photo_val, test_images, test_labels


def build(args, steps_per_epoch, device, init, last, gen):
    """(model, ema, optimizer, scheduler, start_epoch, best_score, metrics), fresh, fine-tuned or resumed."""
    # Channels-last convolutions train about 1.3x faster on CPUs; the saved weights are the same.
    model = FashionCNN(dropout=args.dropout, width=args.width).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                nesterov=True, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                                    steps_per_epoch=steps_per_epoch)
    if init:
        model.load_state_dict(init["model"])
        print(f"initialized from {args.init}", file=sys.stderr)
    # An exponential moving average of the weights generalizes better than the last step's
    # weights; it is what is evaluated, saved as "model" and exported.
    ema = AveragedModel(model, avg_fn=ema_update(args.ema), use_buffers=True)
    if not last:
        return model, ema, optimizer, scheduler, 0, 0.0, []
    model.load_state_dict(last["train_model"])
    ema.load_state_dict(last["ema"])
    optimizer.load_state_dict(last["optimizer"])
    scheduler.load_state_dict(last["scheduler"])
    gen.set_state(last["generator"])
    torch.set_rng_state(last["torch_rng"])
    print(f"resumed from {Path(args.output) / 'last.pt'} after epoch {last['epoch']}", file=sys.stderr)
    return model, ema, optimizer, scheduler, last["epoch"], last["best_score"], last["metrics"]


def run_epoch(epoch, model, ema, loader, optimizer, scheduler, device, gen, args, val_x, val_y, photo_val):
    """One epoch of training, then the averaged weights on the validation images: the epoch's metrics row."""
    t0 = time.time()
    train_loss, train_acc = train_one_epoch(model, ema, loader, optimizer, scheduler, device, gen, args,
                                            desc=f"epoch {epoch + 1}/{args.epochs}")
    val_acc, _ = evaluate(ema.module, val_x, val_y, device)
    row = dict(epoch=epoch + 1, train_loss=train_loss, train_acc=train_acc, val_acc=val_acc,
               lr=scheduler.get_last_lr()[0], seconds=time.time() - t0)
    if photo_val is not None:
        row["photo_val_acc"], _ = evaluate(ema.module, photo_val[0], torch.as_tensor(photo_val[1]), device)
    return row


def main(argv=None):
    args, last, init = settings(parse_args(argv))
    out, device = Path(args.output), pick_device(args.device)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train_x, train_y, val_x, val_y, photo_val, test_images, test_labels = load_data(args)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True,
        drop_last=True, num_workers=args.workers, generator=gen)
    model, ema, optimizer, scheduler, start_epoch, best_score, metrics = build(args, len(loader), device, init, last, gen)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params:,} parameters, {len(train_x):,} training / {len(val_x):,} validation images, on {device}",
          file=sys.stderr)
    try:
        for epoch in range(start_epoch, args.epochs):
            row = run_epoch(epoch, model, ema, loader, optimizer, scheduler, device, gen, args, val_x, val_y, photo_val)
            metrics.append(row)
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  file=sys.stderr)
            # With photos, "best" must be good at both: the mean of the two validation accuracies.
            score = (row["val_acc"] + row["photo_val_acc"]) / 2 if photo_val is not None else row["val_acc"]
            ckpt = dict(model=ema.module.state_dict(), train_model=model.state_dict(), ema=ema.state_dict(),
                        optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        generator=gen.get_state(), torch_rng=torch.get_rng_state(), epoch=epoch + 1,
                        best_score=max(best_score, score), metrics=metrics, args=vars(args))
            save_atomic(ckpt, out / "last.pt")
            if score > best_score:
                best_score = score
                save_atomic(ckpt, out / "best.pt")
            save_atomic(dict(metrics=metrics, args=vars(args)), out / "metrics.json")
    except KeyboardInterrupt:
        done = metrics[-1]["epoch"] if metrics else 0
        print(f"\ninterrupted: {out / 'last.pt'} holds epoch {done}; continue with --resume", file=sys.stderr)
        sys.exit(130)
    report(ema, device, out, test_images, test_labels, dict(metrics=metrics, args=vars(args), best_score=best_score,
                                                           parameters=n_params))


def report(ema, device, out, test_images, test_labels, summary):
    """The best checkpoint's test accuracy, written into metrics.json, and the plots."""
    best = torch.load(out / "best.pt", map_location=device, weights_only=False)
    ema.module.load_state_dict(best["model"])
    test_acc, preds = evaluate(ema.module, test_images, one_hot(test_labels), device)
    save_atomic(dict(summary, best_epoch=best["epoch"], test_accuracy=test_acc), out / "metrics.json")
    plot(summary["metrics"], out, preds.numpy(), test_labels)
    print(f"test accuracy {test_acc:.4f} (best.pt, epoch {best['epoch']}); plots in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
