"""Rebuild a train.py checkpoint from an exported model file (fp32 or int8 QDQ).

    python -m export.from_onnx fashion_edge/models/fashion-cnn-fp32.onnx --output runs/shipped.pt

The exporter folds each batch norm into the convolution before it, so the checkpoint gets the
folded weights and an identity batch norm: the same function, ready for export.to_onnx (to
re-export in another format) or train.train --init (to fine-tune). An int8 file gives its
weights as dequantized, so prefer the fp32 file that ships beside it.
"""
import argparse
import sys
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from train.model import FashionCNN
from train.train import save_atomic

BN_EPS = 1e-5  # torch's default, which the identity batch norm has to cancel


def weights(path):
    """{torch module name: (weight, bias)} of every Conv and Gemm node, dequantized."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i).astype("float32") for i in graph.initializer}
    made_by = {out: node for node in graph.node for out in node.output}

    def value(name):
        node = made_by.get(name)
        if node is None:
            return inits[name]
        if node.op_type != "DequantizeLinear":
            raise ValueError(f"{name} is computed by {node.op_type}, not stored")
        q, scale = inits[node.input[0]], inits[node.input[1]]
        zero = inits[node.input[2]] if len(node.input) > 2 else 0
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if scale.ndim:
            shape[axis] = -1
        return (q - zero.reshape(shape)) * scale.reshape(shape)
    return {module_path(node.name): (value(node.input[1]), value(node.input[2]))
            for node in graph.node if node.op_type in ("Conv", "Gemm")}


def module_path(node_name):
    """The torch module a node came from: "/features/features.4/body/body.0/Conv" is features.4.body.0.

    Each scope names its module relative to its parent ("body.0"), except where a Sequential
    nests in a Sequential and the name is already whole ("features.0.0" under "features.0").
    """
    path = ""
    for part in node_name.split("/")[1:-1]:
        if path and part.startswith(path + "."):
            path = part
        elif "." in part:
            path = f"{path}.{part}" if path else part
    return path


def state_dict(found, width):
    model = FashionCNN(width=width)
    state = model.state_dict()
    for name, module in model.named_modules():
        if name not in found:
            continue
        w, b = (torch.from_numpy(a) for a in found[name])
        state[f"{name}.weight"] = w
        if isinstance(module, torch.nn.Linear):
            state[f"{name}.bias"] = b
            continue
        bn = name.rsplit(".", 1)[0] + "." + str(int(name.rsplit(".", 1)[1]) + 1)  # the batch norm after it
        state.update({f"{bn}.weight": torch.ones_like(b), f"{bn}.bias": b, f"{bn}.running_mean": torch.zeros_like(b),
                      f"{bn}.running_var": torch.full_like(b, 1 - BN_EPS)})
    missing = {n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))} - set(found)
    if missing:
        raise ValueError(f"no weights for {', '.join(sorted(missing))}")
    return state


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a .onnx file written by export.to_onnx")
    p.add_argument("--output", required=True, help="the checkpoint to write")
    args = p.parse_args(argv)
    try:
        found = weights(args.model)
        width = found["features.0.0"][0].shape[0]
        state = state_dict(found, width)
        recipe = onnx.load(args.model).metadata_props
    except (OSError, KeyError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as e:
        sys.exit(f"error: {args.model}: not a model exported from this project's FashionCNN ({e})")
    meta = {m.key: m.value for m in recipe}
    # The recipe that made the weights travels on, so a re-export records the whole history.
    save_atomic(dict(model=state, args={"width": width}, epoch=meta.get("epochs"),
                     recipe=meta.get("recipe", "(no recipe recorded)"),
                     recover_command=f"python -m export.from_onnx {Path(args.model).name} --output CKPT"),
                Path(args.output))
    print(f"wrote {args.output} (width {width})", file=sys.stderr)


if __name__ == "__main__":
    main()
