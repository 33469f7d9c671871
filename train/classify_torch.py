"""The plain PyTorch way to classify one photo: load the checkpoint, resize, run the model.

`fashion-edge bench --checkpoint CKPT` uses this script as its PyTorch baseline: whole runs
of it for cold start, and --time for eager-mode latency.

    python -m train.classify_torch runs/exp1/best.pt shirt.jpg
    python -m train.classify_torch runs/exp1/best.pt --time 500     # latency figures as JSON
"""
import argparse
import json

import torch

from fashion_edge.dataset import LABELS  # numpy only: the baseline stays plain PyTorch
from fashion_edge.timing import latency_and_throughput
from train.model import from_checkpoint


def timings(model, runs, batch=64):
    x1, xb = torch.rand(1, 1, 28, 28), torch.rand(batch, 1, 28, 28)
    with torch.no_grad():
        return latency_and_throughput(lambda: model.predict(x1), lambda: model.predict(xb), batch, runs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("photo", nargs="?")
    p.add_argument("--time", type=int, metavar="RUNS", help="print eager-mode latency over RUNS single-image runs")
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = from_checkpoint(torch.load(args.checkpoint, map_location="cpu", weights_only=False))
    if args.time:
        print(json.dumps(timings(model, args.time)))
        return
    import cv2
    gray = cv2.imread(args.photo, cv2.IMREAD_GRAYSCALE)
    x = torch.from_numpy(255 - cv2.resize(gray, (28, 28), interpolation=cv2.INTER_AREA)).float().div(255)
    with torch.no_grad():
        probs = model.predict(x[None, None])[0][0]
    print(f"{args.photo}  {LABELS[int(probs.argmax())]}  {float(probs.max()):.2f}")


if __name__ == "__main__":
    main()
