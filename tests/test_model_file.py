"""The shipped model files: int8 arithmetic that gives the same answers on every CPU, and an fp32 twin."""
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper

from conftest import ROOT

MODELS = ROOT / "fashion_edge" / "models"
INT16_MAX = 32767


def integer_inputs(path):
    """For each Conv and Gemm node: (name, the int range of its activations, its integer weights as rows)."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    made_by = {out: node for node in graph.node for out in node.output}
    found = []
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        act, weight = (made_by[name] for name in node.input[:2])
        assert act.op_type == weight.op_type == "DequantizeLinear", f"{node.name} does not run in int8"
        info = np.iinfo(inits[act.input[2]].dtype)
        w = inits[weight.input[0]]
        rows = w.reshape(w.shape[0], -1) if node.op_type == "Conv" else (w if node.op_type == "Gemm" else w.T)
        found.append((node.name, max(abs(info.min), info.max), rows.astype(np.int64)))
    return found


def test_no_two_int8_products_can_overflow_16_bits():
    # x86 CPUs without VNNI (most laptops, many servers) multiply uint8 activations by int8
    # weights and add each adjacent pair of products in 16 bits, saturating past 32767; VNNI and
    # arm64 add in 32 bits. Where no pair can pass 32767, every CPU computes the same integers.
    checked = integer_inputs(MODELS / "fashion-cnn.onnx")
    assert len(checked) == 23  # 21 convolutions and 2 fully connected layers
    for name, act_max, rows in checked:
        two_largest = np.sort(np.abs(rows), axis=1)[:, -2:].sum(1)
        worst = int(two_largest.max()) * act_max
        assert worst <= INT16_MAX, f"{name}: a pair of products can reach {worst}"


def test_the_residual_additions_run_in_float(tmp_path):
    # onnxruntime fuses an int8 addition into QLinearAdd, which rounds differently on ARM than
    # on x86; the exporter writes the additions as Sum, which it keeps in float between int8 layers.
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "as-run.onnx")
    ort.InferenceSession(str(MODELS / "fashion-cnn.onnx"), opts, providers=["CPUExecutionProvider"])
    ops = Counter(node.op_type for node in onnx.load(opts.optimized_model_filepath).graph.node)
    assert (ops["QLinearConv"], ops["QLinearAdd"], ops["Sum"]) == (21, 0, 9)


def test_the_fp32_twin_is_the_same_network(data_dir):
    from fashion_edge.model import Model
    from fashion_edge import dataset
    images, labels = dataset.load("test", data_dir)
    pixels = (images[:1000].astype(np.float32) / 255)[:, None]
    int8, fp32 = Model(MODELS / "fashion-cnn.onnx"), Model(MODELS / "fashion-cnn-fp32.onnx")
    assert (int8.metadata["precision"], fp32.metadata["precision"]) == ("int8", "fp32")
    assert int8.labels == fp32.labels and int8.metadata["recipe"] == fp32.metadata["recipe"]
    a, b = int8.run(pixels)[0].argmax(1), fp32.run(pixels)[0].argmax(1)
    assert (a == b).mean() >= 0.98
    assert abs((a == labels[:1000]).mean() - (b == labels[:1000]).mean()) <= 0.01
