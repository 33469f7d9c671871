"""The CNN: ResNet-20 as He et al. drew it for small images, then two fully connected layers.

Three stages of three residual blocks (two 3x3 convolutions each, added to their input); the
second and third stages halve the image with a strided convolution and double the channels;
global average pooling, a fully connected layer (the embedding) and the classifier.
It takes pixels in [0, 1], garment bright on black, and normalizes them itself, so the
exported ONNX graph carries the normalization and the runtime never needs the constants.
"""
import torch
from torch import nn

from fashion_edge.model import MAX_VIEWS, view_batch

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training pixels, scaled to [0, 1]


def conv_bn_relu(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Block(nn.Module):
    """Two 3x3 convolutions added to the block's input (through a 1x1 convolution where the shape changes)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class FashionCNN(nn.Module):
    def __init__(self, num_classes=10, embedding_dim=256, dropout=0.2, width=16, blocks=3):
        super().__init__()
        w = width  # channels of the first stage; each later stage doubles them
        stages = []
        for c_in, c_out, stride in ((w, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2)):
            stages += [Block(c_in, c_out, stride)] + [Block(c_out, c_out, 1) for _ in range(blocks - 1)]
        self.features = nn.Sequential(
            conv_bn_relu(1, w),        # [N, w, 28, 28]
            *stages,                   # [N, w, 28, 28] -> [N, 2w, 14, 14] -> [N, 4w, 7, 7]
            nn.AdaptiveAvgPool2d(1),   # [N, 4w, 1, 1]
        )
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(4 * w, embedding_dim), nn.ReLU(inplace=True))  # [N, 256]
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_classes))      # [N, 10]

    def embed(self, x):
        """Pixels [N, 1, 28, 28] in [0, 1] -> penultimate features [N, 256]."""
        return self.embedding(self.features((x - MEAN) / STD))

    def forward(self, x):
        """Pixels [N, 1, 28, 28] in [0, 1] -> logits [N, 10] (softmax is applied at export)."""
        return self.classifier(self.embed(x))

    def predict(self, x, views=MAX_VIEWS):
        """(probabilities [N, 10], embedding [N, 256]) as the runtime computes them from the exported model:
        both averaged over `views` views of each image (fashion_edge.model.view_batch)."""
        n = len(x)
        embeddings = self.embed(torch.from_numpy(view_batch(x.cpu().numpy(), views)).to(x.device))  # [views*N, 256]
        probabilities = torch.softmax(self.classifier(embeddings), 1)                                  # [views*N, 10]
        return probabilities.reshape(views, n, -1).mean(0), embeddings.reshape(views, n, -1).mean(0)


def from_checkpoint(ckpt):
    """The saved (averaged) model of a train.py checkpoint, built as wide as it was trained."""
    model = FashionCNN(width=ckpt["args"]["width"])
    model.load_state_dict(ckpt["model"])
    return model.eval()
