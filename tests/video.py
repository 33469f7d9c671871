"""Real video files for the webcam tests: Fashion-MNIST garments held in front of a light wall, and people before a camera."""
import cv2
import numpy as np

from fashion_edge.bench import framed


def garment_video(path, images, labels, frames_per_item=10, size=(640, 480), seed=0):
    """Write an MJPEG/MP4 clip showing each image in turn; returns the true label of every frame."""
    rng = np.random.default_rng(seed)
    w, h = size
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if str(path).endswith(".mp4") else "MJPG"))
    video = cv2.VideoWriter(str(path), fourcc, 30.0, size)
    assert video.isOpened(), f"OpenCV cannot write {path}"
    truth = []
    wall = np.full((h, w, 3), (205, 210, 215), np.uint8)
    wall = cv2.add(wall, rng.integers(0, 12, (h, w, 3), dtype=np.uint8))
    for image, label in zip(images, labels):
        # The dataset's garments are bright on black; a real one is a dark object in front of a light wall.
        side = int(h * 0.7)
        garment = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        # An opaque garment: every pixel of it at least 40 levels darker than the wall, the
        # dataset's bright parts darkest (the dataset's images are inverted product shots).
        cloth = (garment > 8)[..., None]
        shade = (40 + 0.7 * garment)[..., None]
        for f in range(frames_per_item):
            frame = wall.copy()
            x = (w - side) // 2 + int(8 * np.sin(f / 3))  # a little sway, as in a hand
            y = (h - side) // 2
            roi = frame[y:y + side, x:x + side].astype(np.float32)
            frame[y:y + side, x:x + side] = np.where(cloth, np.clip(roi - shade, 0, 255), roi).astype(np.uint8)
            video.write(frame)
            truth.append(int(label))
    video.release()
    return truth


def people_video(path, photos, frames_per_item=10, size=(640, 480)):
    """Write a clip of photos of people, each framed as a webcam frames someone before it
    (bench.framed) and swaying a little."""
    video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    assert video.isOpened(), f"OpenCV cannot write {path}"
    for photo in photos:
        for f in range(frames_per_item):
            video.write(framed(photo, size, np.sin(f / 3)))
    video.release()
