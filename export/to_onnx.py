"""Export a training checkpoint to one self-contained ONNX file, optionally quantized to int8.

    python -m export.to_onnx --checkpoint runs/exp1/best.pt --output model.onnx --quantize

The file's contract, which the runtime relies on:
  input  `pixels`         float32 [N, 1, 28, 28], values in [0, 1], garment bright on black
                          (normalization happens inside the graph)
  output `probabilities`  float32 [N, 10], softmax over the classes, of each image as given
                          (the runtime averages views of an image: fashion_edge.model.view_batch)
  output `embedding`      float32 [N, 256], the penultimate features
  metadata_props          labels (JSON list), input (JSON), recipe, test_accuracy (at `views`
                          views), test_accuracy_by_views (JSON), min_confidence, precision,
                          embedding_mean (JSON list: the training images' mean embedding)
With --quantize the fp32 file is kept beside the int8 one, as NAME-fp32.onnx.
"""
import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from fashion_edge import dataset, files
from fashion_edge.model import MAX_VIEWS, view_batch
from fashion_edge.timing import percentiles, time_calls
from train.average import history
from train.model import from_checkpoint
from train.train import load_checkpoint, positive

INPUT_CONVENTION = {
    "name": "pixels", "shape": ["N", 1, 28, 28], "dtype": "float32", "range": [0.0, 1.0],
    "polarity": "garment bright on a black background, as in Fashion-MNIST",
    "normalization": "inside the graph",
}
PARITY_TOLERANCE = 1e-4  # fp32 ONNX against torch, on probabilities


# Views whose test accuracy is recorded: the image alone, with its mirror image, and all ten.
RECORDED_VIEWS = (1, 2, MAX_VIEWS)


class Exportable(torch.nn.Module):
    """The trained network as exported: (probabilities, embedding) of each image as given."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        embedding = self.model.embed(x)
        return torch.softmax(self.model.classifier(embedding), 1), embedding


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
    p.add_argument("--limit", type=positive, help="measure on the first N test images only (quick runs; "
                   "the accuracy recorded in the model is then theirs)")
    return p.parse_args(argv)


def export_fp32(model, path):
    torch.onnx.export(Exportable(model).eval(), torch.rand(1, 1, 28, 28), str(path), dynamo=False, opset_version=17,
                      input_names=["pixels"], output_names=["probabilities", "embedding"],
                      dynamic_axes={"pixels": {0: "N"}, "probabilities": {0: "N"}, "embedding": {0: "N"}})
    onnx.checker.check_model(str(path))


def quantize(fp32_path, int8_path, feeds, symbolic_shapes=True):
    """int8_path: fp32_path statically quantized, calibrated on feeds ({input name: array} each).
    symbolic_shapes=False for graphs whose shapes onnxruntime cannot infer (the region network's)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(feeds)

        def get_next(self):
            return next(self.batches, None)

    prepared = int8_path.with_name(int8_path.name + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=not symbolic_shapes)
    onnx.save(additions_as_sums(onnx.load(str(prepared))), str(prepared))
    # Softmax stays in float: quantized probabilities come in steps of 1/255, too coarse for a
    # confidence threshold and a sum of 1, and it costs nothing at 10 values.
    in_float, floats = [], set()
    for node in onnx.load(str(prepared)).graph.node:
        if node.op_type == "Softmax" or floats & set(node.input):
            in_float.append(node.name)
            floats |= set(node.output)
    # uint8 activations times int8 weights is onnxruntime's fastest int8 path on x86 and arm64,
    # but x86 without VNNI adds each pair of products in 16 bits, which 255 * 127 * 2 overflows:
    # 7-bit weights (reduce_range) keep every pair under 32767, so every CPU gets the same integers.
    quantize_static(str(prepared), str(int8_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=in_float)
    prepared.unlink()


def additions_as_sums(model):
    """The model with each addition of two activations (the residual connections) as Sum, which
    onnxruntime runs in float between the int8 layers. As Add it becomes an int8 QLinearAdd,
    which rounds differently on ARM than on x86: most photos' confidences moved in the
    third decimal on a Raspberry Pi. A float sum, and quantizing it again, round by IEEE rules,
    the same on every CPU."""
    constants = {tensor.name for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Add" and not constants & set(node.input):
            node.op_type = "Sum"
    return model


def session(path):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def predict(sess, pixels, views=1, batch=500):
    """Probabilities [N, 10] averaged over `views` views, as fashion_edge.model.Model.run computes them."""
    return predict_by_views(sess, pixels, (views,), batch)[views]


def predict_by_views(sess, pixels, counts=RECORDED_VIEWS, batch=500):
    """{views: probabilities [N, 10]} for each count, from one run over the most views: fewer are a prefix."""
    most, out = max(counts), {v: [] for v in counts}
    for i in range(0, len(pixels), batch):
        chunk = pixels[i:i + batch]
        probs = sess.run(["probabilities"], {"pixels": view_batch(chunk, most)})[0].reshape(most, len(chunk), -1)
        for v in counts:
            out[v].append(probs[:v].mean(0))
    return {v: np.concatenate(p) for v, p in out.items()}


def latency_ms(sess, pixels, runs=200):
    """Median single-image, single-view latency."""
    return percentiles(time_calls(lambda: sess.run(None, {"pixels": pixels[:1]}), runs))["p50"]


def write_metadata(path, meta, output=None):
    """The model at path with meta as its whole metadata, saved to output (default: path itself)."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value if isinstance(value, str) else json.dumps(value))
    onnx.save(model, str(output or path))


def embedding_mean(path, images, batch=1000):
    """The mean embedding of uint8 images [N, 28, 28] through an exported file, one view each. The
    runtime centres embeddings on it before comparing them (fashion_edge.model.Model.embedding_mean)."""
    sess = session(path)
    pixels = (images.astype(np.float32) / 255)[:, None]
    rows = [sess.run(None, {"pixels": pixels[i:i + batch]})[1] for i in range(0, len(pixels), batch)]
    return [round(float(v), 5) for v in np.concatenate(rows).mean(0, dtype=np.float64)]


def recipe(ckpt, args):
    """The commands that made the checkpoint, and this export, as one line for the model's metadata."""
    # --limit goes into the recipe: the accuracy recorded beside it is then of those images only.
    export = (f"python -m export.to_onnx --checkpoint CKPT --output OUT{' --quantize' if args.quantize else ''}"
              f" --min-confidence {args.min_confidence}" + (f" --limit {args.limit}" if args.limit else ""))
    return f"{history(ckpt)}; {export}"


def check_parity(model, fp32, pixels):
    with torch.no_grad():
        torch_probs = model.predict(torch.from_numpy(pixels), views=1)[0].numpy()
    diff = float(np.abs(predict(fp32, pixels) - torch_probs).max())
    print(f"fp32 ONNX vs torch on {len(pixels)} test images: max |difference| {diff:.2e}", file=sys.stderr)
    if diff >= PARITY_TOLERANCE:
        sys.exit(f"error: the exported graph disagrees with torch by {diff} (> {PARITY_TOLERANCE})")
    return diff


def measure(path, pixels, labels, precision):
    """Test accuracy by views, size and latency of one exported file, and its one-view answers."""
    sess = session(path)
    probs = predict_by_views(sess, pixels)
    by_views = {str(v): float((p.argmax(1) == labels).mean()) for v, p in probs.items()}
    print(f"{precision}: test accuracy by views {by_views}", file=sys.stderr)
    return {f"{precision}_test_accuracy_by_views": by_views, f"{precision}_bytes": path.stat().st_size,
            f"{precision}_latency_ms": latency_ms(sess, pixels)}, probs[1].argmax(1)


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
    test_images, test_labels = test_images[:args.limit], test_labels[:args.limit]
    test_pixels = (test_images.astype(np.float32) / 255)[:, None]
    output.parent.mkdir(parents=True, exist_ok=True)
    targets = {"fp32": output.with_name(output.stem + "-fp32.onnx") if args.quantize else output}
    # Everything is built in a temporary folder beside the output and moved into place at the
    # end, so a failure never leaves a partial model behind.
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".export-") as tmp:
        built = {"fp32": Path(tmp) / "fp32.onnx"}
        export_fp32(model, built["fp32"])
        report, fp32_answers = measure(built["fp32"], test_pixels, test_labels, "fp32")
        report["parity_max_abs_diff"] = check_parity(model, session(built["fp32"]), test_pixels[:1000])
        if args.quantize:
            pick = np.random.default_rng(0).choice(len(train_images), args.calibration_size, replace=False)
            print(f"quantizing, calibrated on {args.calibration_size} training images", file=sys.stderr)
            built["int8"], targets["int8"] = Path(tmp) / "int8.onnx", output
            pixels = (train_images[pick].astype(np.float32) / 255)[:, None]
            quantize(built["fp32"], built["int8"], [{"pixels": pixels[i:i + 100]} for i in range(0, len(pixels), 100)])
            int8_report, int8_answers = measure(built["int8"], test_pixels, test_labels, "int8")
            report.update(int8_report, top1_agreement=float((int8_answers == fp32_answers).mean()))
        for precision, path in built.items():
            by_views = report[f"{precision}_test_accuracy_by_views"]
            write_metadata(path, {
                "labels": dataset.LABELS, "input": INPUT_CONVENTION, "recipe": recipe(ckpt, args),
                "test_accuracy": f"{by_views[str(MAX_VIEWS)]:.4f}", "test_accuracy_by_views": by_views,
                "precision": precision, "min_confidence": f"{args.min_confidence}", "epochs": str(ckpt.get("epoch")),
                "embedding_mean": embedding_mean(path, train_images)})
        for precision, path in built.items():
            os.replace(path, targets[precision])
    report_path = output.with_suffix(".json")
    files.write_bytes(report_path, (json.dumps(report, indent=2) + "\n").encode())
    for key, value in report.items():
        print(f"{key:30} {value:.4f}" if isinstance(value, float) else f"{key:30} {value}")
    print(f"wrote {', '.join(str(t) for t in targets.values())} and {report_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
