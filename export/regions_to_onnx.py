"""Export the garment-region network (train.regions) to the int8 ONNX file the runtime ships.

    python -m export.regions_to_onnx runs/regions/last.pt --output fashion_edge/models/garment-regions.onnx

The graph gives each pixel's region scores as uint8 at a quarter of the photo's height and width
(the runtime upsamples them and takes the best region), takes any height and width that are
multiples of 16, and carries its region names, input convention and held-out IoU as metadata.
It is quantized as the classifier is, so that every CPU computes the same integers and finds the
same regions. Calibration and the IoU use the checkpoint's own photos: training photos it names,
and the ones it held out.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import numpy_helper
import onnxruntime as ort
import torch

from export.to_onnx import quantize
from fashion_edge import files
from fashion_edge.garments import network_input, upsampled
from train.regions import iou, load, load_model

INPUT = {"layout": "NCHW", "channels": "BGR", "range": [0, 1], "sides": "multiples of 16",
         "note": "the runtime resizes a photo to 256 px on its long side and pads it by replicating its edge"}
OUTPUT = {"scores": "uint8 [N, regions, H/4, W/4], larger for likelier regions; the runtime upsamples them "
                    "bilinearly by 4 (half-pixel centres) and takes each pixel's best region"}


class Scores(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.scores(x)


def recipe(args):
    """The train.regions command line that made a checkpoint: a flag per list item, unset flags left out."""
    flags = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
            continue
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                flags.append(f"{flag} {v}")
    return "python -m train.regions " + " ".join(flags)


def calibration_photos(train_args, count, seed=0):
    """count training photos of people (none of the held-out ones) and half as many of garments alone."""
    rng = np.random.default_rng(seed)
    people = sorted((Path(train_args["photos"]) / "photos").glob("*.jpg"))[train_args["val_photos"]:]
    alone = sorted(p for source in train_args["alone"] for p in Path(source).rglob("*.jpg"))
    pick = [people[i] for i in rng.permutation(len(people))[:count]]
    pick += [alone[i] for i in rng.permutation(len(alone))[:count // 2]]
    return [cv2.imread(str(p)) for p in pick]


def integer_output(path):
    """The quantized graph without its last DequantizeLinear: scores come out as the uint8 they are.
    Returns the logits one step of them is worth (that DequantizeLinear's scale)."""
    graph = onnx.load(path)
    last = next(n for n in graph.graph.node if n.output[0] == "scores")
    scale = next(numpy_helper.to_array(i) for i in graph.graph.initializer if i.name == last.input[1])
    feeding = last.input[0]
    graph.graph.node.remove(last)
    for node in graph.graph.node:
        node.output[:] = ["scores" if o == feeding else o for o in node.output]
    graph.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.UINT8
    onnx.save(graph, path)
    return float(scale)


def held_out_iou(path, train_args):
    """Per-region intersection over union of an exported region network on the photos training held out."""
    photos, masks = load(train_args["photos"], train_args["val_photos"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def codes_of(photo):
        x, (h, w) = network_input(photo)
        return upsampled(session.run(None, {"bgr": x})[0][0]).argmax(0)[:h, :w]
    return iou(codes_of, photos, masks)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="last.pt written by train.regions")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--calibration-size", type=int, default=100,
                   help="training photos of people that calibrate the int8 ranges, and half as many of garments alone")
    args = p.parse_args(argv)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    net = load_model(args.checkpoint)
    metrics = json.loads((Path(args.checkpoint).parent / "metrics.json").read_text())
    out = Path(args.output)
    with tempfile.TemporaryDirectory() as tmp, files.replacing(out) as int8:
        fp32 = Path(tmp) / "fp32.onnx"
        torch.onnx.export(Scores(net.eval()), torch.rand(1, 3, 256, 192), fp32, input_names=["bgr"],
                          output_names=["scores"], dynamic_axes={"bgr": {0: "N", 2: "H", 3: "W"}, "scores": {0: "N", 2: "h", 3: "w"}},
                          opset_version=17, dynamo=False)
        print(f"quantizing, calibrated on {args.calibration_size} photos of people", file=sys.stderr)
        feeds = [{"bgr": network_input(photo)[0]} for photo in calibration_photos(ckpt["args"], args.calibration_size)]
        quantize(fp32, Path(int8), feeds, symbolic_shapes=False)
        output = {**OUTPUT, "logit_step": integer_output(int8)}
        iou = {"fp32": metrics[-1].get("val_iou"), "int8": held_out_iou(int8, ckpt["args"])}
        graph = onnx.load(int8)
        meta = {"regions": json.dumps(ckpt["regions"]), "input": json.dumps(INPUT), "output": json.dumps(output),
                "val_iou": json.dumps(iou["int8"]), "epochs": str(metrics[-1]["epoch"]), "recipe": recipe(ckpt["args"]),
                "trained_on": "street-photos/train (Clothing Co-Parsing, Apache-2.0 as declared by its uploader); "
                              "garments alone from clothing-photos-train (CC0) and product-photos-train (MIT as declared)"}
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, int8)
    print(json.dumps({"held_out_iou": iou}))
    print(f"wrote {out} ({out.stat().st_size:,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
