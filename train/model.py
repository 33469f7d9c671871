"""The CNN: three stages of two 3x3 convolutions and max pooling, then two fully connected layers.

It takes pixels in [0, 1], garment bright on black, and normalizes them itself, so the
exported ONNX graph carries the normalization and the runtime never needs the constants.
"""
import torch
from torch import nn

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training pixels, scaled to [0, 1]


def conv_bn_relu(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FashionCNN(nn.Module):
    def __init__(self, num_classes=10, embedding_dim=256, dropout=0.2, width=32):
        super().__init__()
        w = width  # channels of the first stage; each stage doubles them
        self.features = nn.Sequential(
            conv_bn_relu(1, w), conv_bn_relu(w, w), nn.MaxPool2d(2),                  # [N, w, 14, 14]
            conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),      # [N, 2w, 7, 7]
            conv_bn_relu(2 * w, 4 * w), conv_bn_relu(4 * w, 4 * w), nn.MaxPool2d(2),  # [N, 4w, 3, 3]
        )
        self.embedding = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * w * 3 * 3, embedding_dim), nn.ReLU(inplace=True)
        )                                                                 # [N, 256]
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_classes))  # [N, 10]

    def embed(self, x):
        """Pixels [N, 1, 28, 28] in [0, 1] -> penultimate features [N, 256]."""
        return self.embedding(self.features((x - MEAN) / STD))

    def forward(self, x):
        """Pixels [N, 1, 28, 28] in [0, 1] -> logits [N, 10] (softmax is applied at export)."""
        return self.classifier(self.embed(x))


def from_checkpoint(ckpt):
    """The saved (averaged) model of a train.py checkpoint, built as wide as it was trained."""
    given = {"width": ckpt["args"]["width"]} if "width" in ckpt["args"] else {}  # older checkpoints: the default
    model = FashionCNN(**given)
    model.load_state_dict(ckpt["model"])
    return model.eval()
