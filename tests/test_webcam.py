"""`fashion-edge webcam` on a real video file, its browser view, and its life cycle."""
import http.client
import json
import signal
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from video import garment_video

FRAMES_PER_ITEM = 10


@pytest.fixture(scope="module")
def clip(data_dir, tmp_path_factory):
    """A 640x480 clip of 40 Fashion-MNIST test garments in front of a light wall, with each frame's label."""
    from fashion_edge import dataset
    images, labels = dataset.load("test", data_dir)
    path = tmp_path_factory.mktemp("video") / "garments.avi"
    truth = garment_video(path, images[:40], labels[:40], FRAMES_PER_ITEM)
    return path, truth


def webcam(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "fashion_edge", "webcam", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_frame_of_a_file_is_classified_in_order(clip):
    path, truth = clip
    proc = webcam("--source", path, "--no-display", "--json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert [f["frame"] for f in frames] == list(range(len(truth))), "a file is read frame by frame, none skipped"
    assert set(frames[0]) == {"frame", "time", "label", "class_id", "confidence", "top_k", "box", "garments", "fps"}
    # The label is smoothed over the last 5 frames, so it needs a few frames to follow a
    # garment that replaces another at once; count the frames after that.
    # The shipped model gets 88% of them right; a broken pipeline gets chance, 10%.
    settled = [f["class_id"] == t for i, (f, t) in enumerate(zip(frames, truth)) if i % FRAMES_PER_ITEM >= 5]
    assert np.mean(settled) > 0.8, f"only {np.mean(settled):.0%} of settled frames right"
    assert f"{len(truth)} frames in" in err and "fps" in err


def test_an_unsure_garment_is_unknown_not_nothing_in_view(clip):
    # A garment below the confidence threshold is still a garment in view: it keeps its box
    # and its closest classes, and the summary counts it apart from empty frames.
    proc = webcam("--source", clip[0], "--no-display", "--json", "--max-frames", 5, "--min-confidence", 1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for frame in map(json.loads, out.splitlines()):
        assert frame["label"] == "unknown" and frame["class_id"] is None
        assert frame["box"] and len(frame["top_k"]) == 3
    assert "unknown 5" in err and "nothing in view" not in err


def test_max_frames_and_save_write_a_readable_video(clip, tmp_path):
    path, _ = clip
    saved = tmp_path / "out.webm"  # VP8 in WebM: the one format OpenCV writes that browsers play
    proc = webcam("--source", path, "--no-display", "--json", "--max-frames", 25, "--save", saved, "--verbose")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(out.splitlines()) == 25
    assert "per frame: capture" in err and "preprocess" in err and "inference" in err
    video = cv2.VideoCapture(str(saved))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == 25 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.webm"], "no partial file left behind"
    assert saved.read_bytes()[:4] == b"\x1a\x45\xdf\xa3", "a Matroska/WebM header"


def test_a_missing_camera_is_one_line_and_exit_1():
    proc = webcam("--source", "7", "--no-display")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    # One line in all: OpenCV's own warnings about the failed open are silenced.
    [line] = err.strip().splitlines()
    assert line.startswith("error: camera 7 cannot be opened: check the index")


def test_a_stream_that_refuses_is_one_line_and_exit_1():
    proc = webcam("--source", f"http://127.0.0.1:{free_port()}/video.mjpg", "--no-display")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    # One line in all: FFmpeg's own "[tcp @ 0x...] Connection refused" is silenced.
    [line] = err.strip().splitlines()
    assert line.endswith("stream cannot be opened; check the URL, the network and the credentials")


def test_a_truncated_video_plays_what_it_holds(clip, tmp_path):
    cut = tmp_path / "cut.avi"
    data = clip[0].read_bytes()
    cut.write_bytes(data[:len(data) // 3])
    proc = webcam("--source", cut, "--no-display", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert 0 < len(out.splitlines()) < 400
    # Only the summary: FFmpeg's "[mjpeg @ 0x...] overread 8" at the cut is silenced.
    [line] = err.strip().splitlines()
    assert line.startswith(f"{len(out.splitlines())} frames in")


def test_picamera_without_picamera2_is_one_line_and_exit_1():
    proc = webcam("--source", "picamera", "--no-display")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "needs picamera2" in err and "Traceback" not in err


def test_a_bad_serve_address_is_a_usage_error(clip):
    proc = webcam("--source", clip[0], "--serve", "nonsense")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "HOST:PORT" in err


def test_sigterm_stops_cleanly_with_a_summary(clip, tmp_path):
    saved = tmp_path / "partial.avi"
    proc = webcam("--source", clip[0], "--loop", "--no-display", "--json", "--save", saved)
    first = proc.stdout.readline()
    assert json.loads(first)["frame"] == 0
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert " frames in " in err and "Traceback" not in err
    assert cv2.VideoCapture(str(saved)).read()[0], "the saved video is finalized and readable"


def open_stream(port):
    """A raw viewer of /stream.mjpg: (socket, its reader), past the response headers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: localhost\r\n\r\n")
    reader = sock.makefile("rb")
    status = reader.readline()
    headers = {}
    while (line := reader.readline().strip()):
        key, _, value = line.decode().partition(":")
        headers[key.lower()] = value.strip()
    assert b" 200 " in status, status
    return sock, reader, headers


def read_parts(reader, count):
    """The next `count` JPEG parts of a multipart MJPEG stream."""
    parts = []
    while len(parts) < count:
        boundary = reader.readline().strip()
        if not boundary:
            continue
        assert boundary.startswith(b"--"), boundary
        headers = {}
        while (line := reader.readline().strip()):
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(reader.read(int(headers["content-length"])))
    return parts


@pytest.fixture
def served(clip):
    port = free_port()
    proc = webcam("--source", clip[0], "--loop", "--no-display", "--serve", port)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, proc
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_the_server_streams_to_several_viewers_and_survives_one_leaving(served):
    port, proc = served
    page = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    page.request("GET", "/")
    body = page.getresponse().read().decode()
    assert "/stream.mjpg" in body and "/api/latest" in body

    viewers = [open_stream(port) for _ in range(2)]
    for _, reader, headers in viewers:
        assert headers["content-type"].startswith("multipart/x-mixed-replace")
        parts = read_parts(reader, 2)
        assert all(cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3) for p in parts)

    viewers[0][1].close()
    viewers[0][0].close()  # the first viewer walks away mid-stream
    time.sleep(0.5)
    assert len(read_parts(viewers[1][1], 3)) == 3, "the other viewer still gets frames"
    latest = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latest.request("GET", "/api/latest")
    result = json.loads(latest.getresponse().read())
    assert {"frame", "label", "confidence", "top_k", "box", "fps"} <= set(result)
    assert proc.poll() is None, "the loop still runs"


def test_the_page_in_a_real_browser_shows_video_and_label(served, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = "/usr/bin/chromium"
    import os
    if not os.path.exists(chromium):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing; .ci/run installs it")
        pytest.skip("no /usr/bin/chromium (apt install chromium)")
    port, _ = served
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.getElementById('video').naturalWidth > 0", timeout=20000)
        page.wait_for_function("document.getElementById('label').textContent !== 'waiting for frames...'", timeout=20000)
        first = page.text_content("#detail")
        page.wait_for_timeout(1000)
        assert page.text_content("#detail") != first, "frames keep arriving"
        label = page.text_content("#label")
        labels = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle boot", "nothing in view"]
        assert any(name in label for name in labels), label
        assert page.evaluate("document.getElementById('video').naturalWidth") == 640
        page.screenshot(path=str(tmp_path / "page.png"))
        browser.close()
