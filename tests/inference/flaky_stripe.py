"""A Stripe stand-in for meter events that behaves like Stripe on a lost response: it records (bills)
each event, de-duplicating by `identifier` as Stripe does, but answers the first N requests with a
500, as if the response were lost on the way back. GET /_billed returns the billed events.

    python tests/inference/flaky_stripe.py PORT FAILURES
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock
from urllib.parse import parse_qsl

BILLED: dict[str, dict] = {}
STATE = {"requests": 0, "failures_left": 0}
LOCK = Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            return self._reply(200, {"billed": list(BILLED.values()), "requests": STATE["requests"]})

    def do_POST(self):
        params = dict(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()))
        with LOCK:
            STATE["requests"] += 1
            BILLED.setdefault(params["identifier"], params)  # Stripe ignores a repeated identifier
            fail = STATE["failures_left"] > 0
            STATE["failures_left"] -= fail
        if fail:
            return self._reply(500, {"error": {"type": "api_error", "message": "response lost"}})
        return self._reply(200, {"object": "billing.meter_event", "livemode": False, **params})


if __name__ == "__main__":
    STATE["failures_left"] = int(sys.argv[2])
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
