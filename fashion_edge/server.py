"""The browser view: `/` a page, `/stream.mjpg` the overlaid video, `/api/latest` the latest result.

Python's standard library server, one thread per viewer. Each frame is encoded once and
shared; a viewer that disconnects only ends its own thread.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = "fashion-edge-frame"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fashion-edge live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font-family: system-ui, sans-serif; background: #111; color: #eee; margin: 0; text-align: center; }
 img { max-width: 100%; margin-top: 1em; border: 1px solid #333; }
 #label { font-size: 2em; margin: .4em; } #detail { color: #aaa; }
</style></head>
<body>
 <div id="label">waiting for frames...</div>
 <div id="detail"></div>
 <img id="video" src="/stream.mjpg" alt="live camera view">
<script>
async function poll() {
  try {
    const r = await (await fetch('/api/latest', {cache: 'no-store'})).json();
    if (r.frame !== undefined) {
      const named = (g) => g.label + ' ' + (100 * g.confidence).toFixed(0) + '%';
      document.getElementById('label').textContent = r.label === null ? 'nothing in view'
        : r.garments.length > 1 ? r.garments.map(named).join(' \\u00b7 ') : named(r);
      document.getElementById('detail').textContent = 'frame ' + r.frame + ' \\u00b7 ' + r.fps.toFixed(1) + ' fps';
      if (r.similar && r.similar.length) {
        document.getElementById('detail').textContent += ' \\u00b7 looks like ' + r.similar.map(
          (s) => s.path.split(/[\\\\/]/).pop() + ' ' + s.similarity.toFixed(2)).join(', ');
      }
    }
  } catch (e) {}
  setTimeout(poll, 250);
}
poll();
</script></body></html>
"""


class Broadcast:
    """The newest JPEG and result, handed to every viewer as they arrive."""

    def __init__(self):
        self.cond = threading.Condition()
        self.jpeg, self.result, self.seq, self.closed = None, {}, 0, False

    def publish(self, jpeg, result):
        with self.cond:
            self.jpeg, self.result, self.seq = jpeg, result, self.seq + 1
            self.cond.notify_all()

    def next_frame(self, after, timeout=5.0):
        """(seq, jpeg) of a frame newer than `after`, or None once closed or when none comes in time."""
        with self.cond:
            self.cond.wait_for(lambda: self.seq > after or self.closed, timeout)
            if self.closed or self.seq <= after:
                return None
            return self.seq, self.jpeg

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Handler(BaseHTTPRequestHandler):
    broadcast = None  # set on the subclass made per server

    def log_message(self, *args):  # one line per request would drown the results on stderr
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/":
            self.send_body(PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/api/latest":
            self.send_body(json.dumps(self.broadcast.result).encode(), "application/json")
        elif path == "/stream.mjpg":
            self.stream()
        else:
            self.send_error(404, "try /, /stream.mjpg or /api/latest")

    def send_body(self, body, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def stream(self):
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seq = 0
        try:
            while (item := self.broadcast.next_frame(seq)) is not None:
                seq, jpeg = item
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode())
                self.wfile.write(jpeg)
                self.wfile.write(b"\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer left; the loop and the other viewers go on


class ServerError(Exception):
    pass


class Server:
    def __init__(self, host, port):
        self.broadcast = Broadcast()
        handler = type("BoundHandler", (Handler,), {"broadcast": self.broadcast})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as e:  # the port is taken, the host is not ours, or the port needs privileges
            raise ServerError(f"cannot serve on {host}:{port} ({e.strerror or e}); pick another port or host") from None
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http-server", daemon=True)
        self.thread.start()

    def close(self):
        self.broadcast.close()
        self.httpd.shutdown()
        self.httpd.server_close()


def parse_address(text):
    """'8080' or 'HOST:8080' -> (host, port); the host defaults to loopback, other hosts are the user's choice."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r}: expected PORT or HOST:PORT, such as 8080 or 0.0.0.0:8080")
    return host.strip("[]") or "127.0.0.1", int(port)
