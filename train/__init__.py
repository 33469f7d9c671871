"""Training: the network (model), its training script (train), weight averaging (average) and a plain
PyTorch baseline (classify_torch). Run each from the checkout's root: python -m train.train --help."""
