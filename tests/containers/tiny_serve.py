#!/usr/bin/python3
"""A tiny SageMaker-style model server (the standard library only), the `serve` of test images.

GET /ping -> 200. POST /invocations -> JSON: the body echoed, the model file's text, GREETING,
whether /opt/ml/model is writable. Behaviour from the environment:
TINY_CRASH_AFTER=S (exit 3 after S seconds), TINY_IGNORE_TERM=1 (SIGTERM is logged and ignored).
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "/opt/ml/model"


def say(text):
    print(f"tiny: {text}", flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200 if self.path == "/ping" else 404, {})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/invocations":
            self._send(404, {})
            return
        try:
            with open(os.path.join(MODEL, "model.txt")) as f:
                model = f.read().strip()
        except OSError:
            model = None
        self._send(
            200,
            {
                "echo": body.decode(),
                "model": model,
                "greeting": os.environ.get("GREETING"),
                "model_writable": os.access(MODEL, os.W_OK),
            },
        )


def main():
    if sys.argv[1:] not in ([], ["serve"]):  # `serve` itself, or an entry point's argument
        say(f"usage: serve (got {sys.argv[1:]})")
        sys.exit(2)
    port = int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)

    def term(signum, frame):
        if os.environ.get("TINY_IGNORE_TERM"):
            say("got SIGTERM, ignoring it")
            return
        say("got SIGTERM, draining")
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, term)
    crash = os.environ.get("TINY_CRASH_AFTER")
    if crash:

        def die():
            time.sleep(float(crash))
            say("crashing on purpose")
            os._exit(3)

        threading.Thread(target=die, daemon=True).start()
    say(f"listening on {port}")
    server.serve_forever()
    say("stopped")


main()
