"""Average the weights of a fine-tuned run with those of the run it started from.

    python -m train.average runs/rn80/last.pt runs/ft12/last.pt --output runs/ft12/average.pt

Fine-tuning on a larger share of photos made the shipped network better on photos but worse
on Fashion-MNIST and at leaving hats, shorts and skirts `unknown`. The plain average of the two
sets of weights kept most of what each was good at, as Wortsman et al. found for fine-tuned
models ("Robust fine-tuning of zero-shot models", 2022). It works because fine-tuning from a
checkpoint stays near it: averaging two networks trained apart gives noise.
"""
import argparse
import sys
from pathlib import Path

import torch

from train.train import as_flags, load_checkpoint, save_atomic


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("start", help="the checkpoint the fine-tuning started from (its --init)")
    p.add_argument("tuned", help="the fine-tuned run's last.pt")
    p.add_argument("--weight", type=float, default=0.5, help="share of the fine-tuned weights in the average")
    p.add_argument("--output", required=True, help="the averaged checkpoint to write, for export.to_onnx")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    start, tuned = load_checkpoint(args.start), load_checkpoint(args.tuned)
    if {k: v.shape for k, v in start["model"].items()} != {k: v.shape for k, v in tuned["model"].items()}:
        sys.exit(f"error: {args.start} and {args.tuned} hold different networks; "
                 "pass a run and a run fine-tuned from it with --init")
    # Batch-norm counters are integers and equal in meaning; they are taken from the tuned run.
    model = {k: torch.lerp(v, tuned["model"][k], args.weight) if v.is_floating_point() else tuned["model"][k]
             for k, v in start["model"].items()}
    save_atomic(dict(model=model, args=tuned["args"], epoch=tuned["epoch"], averaged_with=start["args"],
                     start_recipe=history(start), average_command=" ".join(["python -m train.average", *argv])),
                Path(args.output))
    print(f"wrote {args.output}: {1 - args.weight:g} x {args.start} + {args.weight:g} x {args.tuned}", file=sys.stderr)


def history(ckpt):
    """The commands that made a checkpoint, oldest first, as one line: its training run, after the
    history of the model file or average it started from, and the average that made it, if any."""
    if "recipe" in ckpt:  # rebuilt from a model file by export.from_onnx: the file's recipe goes first
        steps = [ckpt["recipe"], ckpt["recover_command"]]
    else:
        steps = [f"python -m train.train {as_flags(ckpt.get('args', {}))}"]
    if "averaged_with" in ckpt:
        steps = [ckpt.get("start_recipe") or f"python -m train.train {as_flags(ckpt['averaged_with'])}",
                 *steps, ckpt["average_command"]]
    return "; ".join(steps)


if __name__ == "__main__":
    main()
