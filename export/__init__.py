"""From a training checkpoint to the runtime's ONNX file (to_onnx), and back (from_onnx)."""
