"""A tiny recording HTTP server for contract tests of the Stripe calls localstripe lacks (Prices,
Billing Meters and meter events, Connect's application_fee_amount/transfer_data).

It answers every request with a minimal object of the right kind (so the SDK parses it) and
records method, path, form parameters and headers; GET /_recorded returns them all.

    python tests/marketplace/recording_stripe.py PORT
"""

import itertools
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

RECORDED: list[dict] = []
_ids = itertools.count(1)
OBJECTS = {  # path prefix -> (object, id prefix)
    "/v1/customers": ("customer", "cus_"),
    "/v1/payment_intents": ("payment_intent", "pi_"),
    "/v1/setup_intents": ("setup_intent", "seti_"),
    "/v1/prices": ("price", "price_"),
    "/v1/subscriptions": ("subscription", "sub_"),
    "/v1/billing/meters": ("billing.meter", "mtr_"),
    "/v1/billing/meter_events": ("billing.meter_event", ""),
}


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
        if self.path == "/_recorded":
            return self._reply(200, {"requests": RECORDED})
        return self._record(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self._record(self.rfile.read(length))

    def _record(self, body: bytes):
        url = urlsplit(self.path)
        params = dict(parse_qsl(body.decode() or url.query, keep_blank_values=True))
        RECORDED.append({"method": self.command, "path": url.path, "params": params,
                         "headers": {k.lower(): v for k, v in self.headers.items()}})
        kind, prefix = next((v for k, v in OBJECTS.items() if url.path.startswith(k)), ("unknown", "obj_"))
        obj = {"object": kind, "livemode": False, **{k: v for k, v in params.items() if "[" not in k}}
        if prefix:
            obj["id"] = f"{prefix}rec{next(_ids)}"
        if kind in ("payment_intent", "setup_intent"):
            obj["client_secret"] = f"{obj['id']}_secret_recorded"
        return self._reply(200, obj)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
