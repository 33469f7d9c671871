"""Export the garment-region network (train.regions) to the ONNX file the runtime ships.

    python -m export.regions_to_onnx runs/regions/last.pt --output fashion_edge/models/garment-regions.onnx

The graph ends in a softmax, takes any height and width that are multiples of 16, and carries its
region names, input convention and held-out IoU as metadata. It stays fp32: at 0.8 MB it is small
already, and fp32 gives the same regions on every CPU to within rounding.
"""
import argparse
import json
from pathlib import Path

import onnx
import torch

from fashion_edge import files
from train.regions import RegionNet

INPUT = {"layout": "NCHW", "channels": "BGR", "range": [0, 1], "sides": "multiples of 16",
         "note": "the runtime resizes a photo to 256 px on its long side and pads it by replicating its edge"}


class WithSoftmax(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), 1)


def recipe(args):
    """The train.regions command line that made a checkpoint: a flag per list item, unset flags left out."""
    flags = []
    for key, value in args.items():
        for v in value if isinstance(value, list) else [value]:
            if v is not None:
                flags.append(f"--{key.replace('_', '-')} {v}")
    return "python -m train.regions " + " ".join(flags)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="last.pt written by train.regions")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    args = p.parse_args(argv)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    net = RegionNet(ckpt["width"], len(ckpt["regions"]))
    net.load_state_dict(ckpt["model"])
    model = WithSoftmax(net.eval())
    metrics = json.loads((Path(args.checkpoint).parent / "metrics.json").read_text())
    out = Path(args.output)
    with files.replacing(out) as tmp:
        torch.onnx.export(model, torch.rand(1, 3, 256, 192), tmp, input_names=["bgr"], output_names=["regions"],
                          dynamic_axes={"bgr": {0: "N", 2: "H", 3: "W"}, "regions": {0: "N", 2: "H", 3: "W"}},
                          opset_version=17, dynamo=False)
        graph = onnx.load(tmp)
        meta = {"regions": json.dumps(ckpt["regions"]), "input": json.dumps(INPUT),
                "val_iou": json.dumps(metrics[-1].get("val_iou")), "epochs": str(metrics[-1]["epoch"]),
                "recipe": recipe(ckpt["args"]),
                "trained_on": "street-photos/train (Clothing Co-Parsing, Apache-2.0 as declared by its uploader); "
                              "garments alone from clothing-photos-train (CC0) and product-photos-train (MIT as declared)"}
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, tmp)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
