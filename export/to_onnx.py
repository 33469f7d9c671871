"""Export a training checkpoint to one self-contained ONNX file, optionally quantized to int8.

    python export/to_onnx.py --checkpoint runs/exp1/best.pt --output model.onnx --quantize

The file's contract, which the runtime relies on:
  input  `pixels`         float32 [N, 1, 28, 28], values in [0, 1], garment bright on black
                          (normalization happens inside the graph)
  output `probabilities`  float32 [N, 10], softmax over the classes, averaged over ten views:
                          the image and its one-pixel shifts, each also mirrored
  output `embedding`      float32 [N, 256], the penultimate features
  metadata_props          labels (JSON list), input (JSON), recipe, test_accuracy, min_confidence
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "train"))
sys.path.insert(0, str(ROOT))
from model import from_checkpoint  # noqa: E402
from train import load_checkpoint, positive  # noqa: E402

from fashion_edge import dataset  # noqa: E402

INPUT_CONVENTION = {
    "name": "pixels", "shape": ["N", 1, 28, 28], "dtype": "float32", "range": [0.0, 1.0],
    "polarity": "garment bright on a black background, as in Fashion-MNIST",
    "normalization": "inside the graph",
}
PARITY_TOLERANCE = 1e-4  # fp32 ONNX against torch, on probabilities


class Exportable(torch.nn.Module):
    """The trained network as exported: its predict() (probabilities, embedding) as forward()."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.predict(x)


def probability(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability from 0 to 1")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="best.pt or last.pt written by train/train.py")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--quantize", action="store_true", help="int8 static quantization (QDQ, per-channel weights)")
    p.add_argument("--calibration-size", type=positive, default=1000, help="training images used to calibrate int8 ranges")
    p.add_argument("--min-confidence", type=probability, default=0.5,
                   help="recorded in the model: below it the runtime answers 'unknown'")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (default: searched)")
    return p.parse_args(argv)


def export_fp32(model, path):
    torch.onnx.export(Exportable(model).eval(), torch.rand(1, 1, 28, 28), str(path), dynamo=False, opset_version=17,
                      input_names=["pixels"], output_names=["probabilities", "embedding"],
                      dynamic_axes={"pixels": {0: "N"}, "probabilities": {0: "N"}, "embedding": {0: "N"}})
    onnx.checker.check_model(str(path))


def as_flags(train_args):
    """A checkpoint's train.py arguments as the flags that give them back (a switch that was on is bare)."""
    # `is` tests: 0 == False, and --erase 0 must not be dropped for the default to creep back in.
    return " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in train_args.items()
                    if v is not None and v is not False and k not in ("resume", "data_dir"))


def quantize(fp32_path, int8_path, calibration):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"pixels": calibration[i:i + 100]} for i in range(0, len(calibration), 100)])

        def get_next(self):
            return next(self.batches, None)

    prepared = int8_path.with_name(int8_path.name + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared))
    # Softmax and what follows it (the average over the views) stay in float: quantized
    # probabilities come in steps of 1/255, too coarse for a confidence threshold and a sum of
    # 1, and these ops cost nothing at 10 values. The nodes are in topological order.
    in_float, floats = [], set()
    for node in onnx.load(str(prepared)).graph.node:
        if node.op_type == "Softmax" or floats & set(node.input):
            in_float.append(node.name)
            floats |= set(node.output)
    quantize_static(str(prepared), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=in_float)
    prepared.unlink()


def session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def predict(sess, pixels, batch=1000):
    return np.concatenate([sess.run(["probabilities"], {"pixels": pixels[i:i + batch]})[0]
                           for i in range(0, len(pixels), batch)])


def latency_ms(sess, pixels, runs=200):
    one = pixels[:1]
    for _ in range(20):
        sess.run(None, {"pixels": one})
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {"pixels": one})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def write_metadata(path, meta):
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.save(model, str(path))


def main(argv=None):
    args = parse_args(argv)
    output = Path(args.output)
    ckpt = load_checkpoint(args.checkpoint)
    model = from_checkpoint(ckpt)
    try:
        test_images, test_labels = dataset.load("test", args.data_dir)
        train_images, _ = dataset.load("train", args.data_dir)
    except dataset.DataError as e:
        sys.exit(f"error: {e}")
    test_pixels = (test_images.astype(np.float32) / 255)[:, None]
    output.parent.mkdir(parents=True, exist_ok=True)

    # Everything is built in a temporary folder beside the output and moved into place at the
    # end, so a failure never leaves a partial model behind.
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".export-") as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_fp32(model, fp32_path)
        fp32 = session(fp32_path)
        with torch.no_grad():
            torch_probs = model.predict(torch.from_numpy(test_pixels[:1000]))[0].numpy()
        diff = float(np.abs(predict(fp32, test_pixels[:1000]) - torch_probs).max())
        print(f"fp32 ONNX vs torch on 1000 test images: max |difference| {diff:.2e}", file=sys.stderr)
        assert diff < PARITY_TOLERANCE, f"exported graph disagrees with torch by {diff} (> {PARITY_TOLERANCE})"
        fp32_pred = predict(fp32, test_pixels).argmax(1)
        report = {"fp32_test_accuracy": float((fp32_pred == test_labels).mean()),
                  "fp32_bytes": fp32_path.stat().st_size, "fp32_latency_ms": latency_ms(fp32, test_pixels),
                  "parity_max_abs_diff": diff}
        final = fp32_path
        if args.quantize:
            rng = np.random.default_rng(0)
            pick = rng.choice(len(train_images), args.calibration_size, replace=False)
            calibration = (train_images[pick].astype(np.float32) / 255)[:, None]
            final = Path(tmp) / "int8.onnx"
            print(f"quantizing, calibrated on {args.calibration_size} training images", file=sys.stderr)
            quantize(fp32_path, final, calibration)
            int8 = session(final)
            int8_pred = predict(int8, test_pixels).argmax(1)
            report.update(int8_test_accuracy=float((int8_pred == test_labels).mean()),
                          top1_agreement=float((int8_pred == fp32_pred).mean()),
                          int8_bytes=final.stat().st_size, int8_latency_ms=latency_ms(int8, test_pixels))
        accuracy = report["int8_test_accuracy" if args.quantize else "fp32_test_accuracy"]
        steps = [f"python train/train.py {as_flags(ckpt.get('args', {}))}"]
        if "averaged_with" in ckpt:  # made by train/average.py from the run that was fine-tuned and the fine-tuning
            steps = [f"python train/train.py {as_flags(ckpt['averaged_with'])}", *steps, ckpt["average_command"]]
        steps.append(f"python export/to_onnx.py --checkpoint CKPT --output OUT{' --quantize' if args.quantize else ''}"
                     f" --min-confidence {args.min_confidence}")
        recipe = "; ".join(steps)
        write_metadata(final, {
            "labels": dataset.LABELS, "input": INPUT_CONVENTION, "recipe": recipe,
            "test_accuracy": f"{accuracy:.4f}", "precision": "int8" if args.quantize else "fp32",
            "min_confidence": f"{args.min_confidence}", "epochs": str(ckpt.get("epoch")),
        })
        os.replace(final, output)
    report_path = output.with_suffix(".json")
    report_path.with_suffix(".tmp").write_text(json.dumps(report, indent=2) + "\n")
    os.replace(report_path.with_suffix(".tmp"), report_path)
    for key, value in report.items():
        print(f"{key:22} {value:.4f}" if isinstance(value, float) else f"{key:22} {value}")
    print(f"wrote {output} ({output.stat().st_size:,} bytes) and {report_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
