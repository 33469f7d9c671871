"""Frame sources for the live loop: a camera index, a video file, a stream URL or a Pi camera.

Live sources are read by a thread that keeps only the newest frame, so a slow step never
builds a backlog. A video file is read frame by frame, none skipped, so a recorded clip
gives the same answers on any machine.
"""
import os
import threading
import time
from pathlib import Path

import cv2

RETRIES = 5            # reopen attempts for a live source that stops delivering
RETRY_PAUSE = 0.5      # seconds between them

# OpenCV warns on stderr when a source fails to open or drops ("can't open camera by index"),
# in lines that name its source files, and FFmpeg logs its own errors there ("[tcp @ 0x55...]
# Connection refused", "[mjpeg @ 0x55...] overread 8" at a truncated video's end). The errors
# below say the same with the fix, in one line. FFmpeg reads its level when the first video is
# opened; -8 is its AV_LOG_QUIET.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class CameraError(Exception):
    """A source that cannot be opened or stopped delivering; the message names it and the fixes."""


def open_source(source, width=None, height=None, loop=False):
    """The source named on the command line: '0', 'clip.mp4', 'rtsp://...', or 'picamera'."""
    if source == "picamera":
        return PiCamera(width or 640, height or 480)
    if source.isdigit():
        return LiveSource(lambda: _capture(int(source), width, height), f"camera {source}",
                          f"camera {source} cannot be opened: check the index (try 0, 1, ...), that no other "
                          "program is using it, and that you may read /dev/video* (the 'video' group)")
    if "://" in source:
        return LiveSource(lambda: _capture(source, width, height), source,
                          f"{source}: stream cannot be opened; check the URL, the network and the credentials")
    if not Path(source).is_file():
        raise CameraError(f"{source}: no such video file, camera index or stream URL")
    return FileSource(source, loop)


def _capture(what, width, height):
    cap = cv2.VideoCapture(what)
    if width:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    if height:
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    return cap


class FileSource:
    """Every frame of a video file in order; with loop, from the start again at the end."""
    live = False

    def __init__(self, path, loop):
        self.name, self.loop, self.index = str(path), loop, -1
        self.cap = cv2.VideoCapture(self.name)
        if not self.cap.isOpened():
            raise CameraError(f"{path}: not a video OpenCV can read; convert it to MP4 (H.264) or AVI (MJPEG)")
        ok, self.first = self.cap.read()
        if not ok:
            raise CameraError(f"{path}: the video holds no frames")
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self):
        """(frame index, BGR frame), or None at the end."""
        if self.first is not None:
            frame, self.first = self.first, None
        else:
            ok, frame = self.cap.read()
            if not ok and self.loop:
                self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, frame = self.cap.read()
            if not ok:
                return None
        self.index += 1
        return self.index, frame

    def release(self):
        self.cap.release()


class LiveSource:
    """A camera or stream read by a background thread that keeps only the newest frame."""
    live = True

    def __init__(self, opener, name, hint):
        self.opener, self.name, self.hint = opener, name, hint
        self.cap = opener()
        if not self.cap.isOpened():
            self.cap.release()
            raise CameraError(self.hint)
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 30.0
        self.cond = threading.Condition()
        self.frame, self.index, self.taken, self.error, self.stopped = None, -1, -1, None, False
        self.thread = threading.Thread(target=self._reader, name="frame-reader", daemon=True)
        self.thread.start()

    def _reader(self):
        failures = 0
        while not self.stopped:
            ok, frame = self.cap.read()
            if ok:
                failures = 0
                with self.cond:
                    self.frame, self.index = frame, self.index + 1
                    self.cond.notify_all()
                continue
            failures += 1
            if failures > RETRIES:
                with self.cond:
                    self.error = f"{self.name} stopped delivering frames (tried {RETRIES} times to reopen it)"
                    self.cond.notify_all()
                return
            time.sleep(RETRY_PAUSE)
            self.cap.release()
            self.cap = self.opener()

    def read(self):
        """The newest frame not yet returned, waiting for one if needed. Raises CameraError on failure."""
        with self.cond:
            self.cond.wait_for(lambda: self.index > self.taken or self.error or self.stopped)
            if self.error:
                raise CameraError(self.error)
            if self.stopped:
                return None
            self.taken = self.index
            return self.index, self.frame

    def release(self):
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        self.thread.join(timeout=2)
        self.cap.release()


class PiCamera:
    """A Raspberry Pi camera module through picamera2 (libcamera), which OpenCV's index does not reach."""
    live = True

    def __init__(self, width, height):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError("--source picamera needs picamera2: on Raspberry Pi OS run 'sudo apt install "
                              "python3-picamera2' and create the virtual environment with --system-site-packages") from None
        self.name, self.index, self.fps = "picamera", -1, 30.0
        try:
            self.cam = Picamera2()
            # picamera2's "RGB888" is laid out B, G, R in memory: what OpenCV calls BGR.
            self.cam.configure(self.cam.create_video_configuration(main={"size": (width, height), "format": "RGB888"}))
            self.cam.start()
        except Exception as e:  # picamera2 raises RuntimeError or its own types when no camera is attached
            raise CameraError(f"picamera: cannot start the camera ({e}); check the ribbon cable and 'rpicam-hello'") from None

    def read(self):
        # capture_array blocks until the next frame, which is always the newest one.
        self.index += 1
        return self.index, self.cam.capture_array()

    def release(self):
        self.cam.stop()
        self.cam.close()
