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
CREATED: dict[str, dict] = {}
_ids = itertools.count(1)
OBJECTS = {  # path prefix -> (object, id prefix)
    "/v1/customers": ("customer", "cus_"),
    "/v1/payment_intents": ("payment_intent", "pi_"),
    "/v1/setup_intents": ("setup_intent", "seti_"),
    "/v1/prices": ("price", "price_"),
    "/v1/subscriptions": ("subscription", "sub_"),
    "/v1/billing/meters": ("billing.meter", "mtr_"),
    "/v1/billing/meter_events": ("billing.meter_event", ""),
    "/v1/accounts": ("account", "acct_"),
    "/v1/account_links": ("account_link", ""),
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
        object_id = url.path.rsplit("/", 1)[-1]
        if self.command == "GET" and object_id in CREATED:
            return self._reply(200, CREATED[object_id])
        kind, prefix = next((v for k, v in OBJECTS.items() if url.path.startswith(k)), ("unknown", "obj_"))
        obj = {"object": kind, "livemode": False, **_unflatten(params)}
        if prefix:
            obj["id"] = f"{prefix}rec{next(_ids)}"
        if kind == "setup_intent":
            # As if the customer confirmed the card in the page with Stripe.js.
            obj.update(status="succeeded", payment_method="pm_recorded")
        elif kind == "payment_intent":
            obj["status"] = "succeeded"
        elif kind == "account_link":
            obj["url"] = "https://connect.example/onboarding/recorded"
        if kind in ("payment_intent", "setup_intent"):
            obj["client_secret"] = f"{obj['id']}_secret_recorded"
        if "id" in obj:
            CREATED[obj["id"]] = obj
        return self._reply(200, obj)


def _unflatten(params: dict) -> dict:
    """Stripe's form encoding one level deep: metadata[k]=v → {"metadata": {"k": "v"}}."""
    out: dict = {}
    for key, value in params.items():
        if "[" in key:
            outer, inner = key.split("[", 1)
            if "[" not in inner and isinstance(out.setdefault(outer, {}), dict):
                out[outer][inner.rstrip("]")] = value
        else:
            out[key] = value
    return out


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
