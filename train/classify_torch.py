"""The plain PyTorch way to classify one photo: load the checkpoint, resize, run the model.

`fashion-edge bench --checkpoint CKPT` times whole runs of this script as the cold-start
baseline for `fashion-edge classify`.

    python train/classify_torch.py runs/exp1/best.pt shirt.jpg
"""
import sys
from pathlib import Path

import cv2
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import FashionCNN  # noqa: E402

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

checkpoint, photo = sys.argv[1:3]
model = FashionCNN()
model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["model"])
model.eval()
gray = cv2.imread(photo, cv2.IMREAD_GRAYSCALE)
x = torch.from_numpy(255 - cv2.resize(gray, (28, 28), interpolation=cv2.INTER_AREA)).float().div(255)
with torch.no_grad():
    probs = torch.softmax(model(x[None, None]), 1)[0]
print(f"{photo}  {LABELS[int(probs.argmax())]}  {float(probs.max()):.2f}")
