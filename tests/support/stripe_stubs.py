"""Stripe stand-ins for the calls localstripe lacks, each a real HTTP server process:

- `recording`: answers every request with a minimal object of the right kind (so the SDK parses
  it) and records method, path, form parameters and headers; GET /_recorded returns them all.
  POST /_fail (path, count) makes the next `count` requests under `path` fail with a 500.
  For contract tests of Prices, Billing Meters and meter events, Connect's fees and destinations.
- `flaky`: meter events as Stripe bills them on a lost response: it records (bills) each event,
  de-duplicating by `identifier` as Stripe does, but answers the first FAILURES requests with a
  500, as if the response were lost on the way back. GET /_billed returns the billed events.

    python -m tests.support.stripe_stubs recording PORT
    python -m tests.support.stripe_stubs flaky PORT FAILURES

`stripe_stub(settings, kind, *args)` starts one for a test and points the site's Stripe at it.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock
from urllib.parse import parse_qsl, urlsplit


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self, body: bytes | None = None) -> dict:
        if body is None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return dict(parse_qsl(body.decode() or urlsplit(self.path).query, keep_blank_values=True))


# --- recording ---------------------------------------------------------------------------------

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
    "/v1/refunds": ("refund", "re_"),
    "/v1/transfers": ("transfer", "tr_"),
}


FAILURES: dict[str, int] = {}  # path prefix -> how many more requests answer 500


class RecordingHandler(JsonHandler):
    def do_GET(self):
        if self.path == "/_recorded":
            return self._reply(200, {"requests": RECORDED})
        return self._record(self._form(b""))

    def do_POST(self):
        if self.path == "/_fail":
            # POST /_fail path=/v1/subscriptions&count=2: the next 2 such requests get a 500.
            params = self._form()
            FAILURES[params["path"]] = int(params["count"])
            return self._reply(200, {"failing": FAILURES})
        return self._record(self._form())

    def do_DELETE(self):
        return self._record(self._form(b""))

    def _record(self, params: dict):
        url = urlsplit(self.path)
        RECORDED.append({"method": self.command, "path": url.path, "params": params,
                         "headers": {k.lower(): v for k, v in self.headers.items()}})
        failing = next((k for k, n in FAILURES.items() if n > 0 and url.path.startswith(k)), None)
        if failing:
            FAILURES[failing] -= 1
            return self._reply(500, {"error": {"type": "api_error", "message": "Stripe is having a bad day"}})
        object_id = url.path.rsplit("/", 1)[-1]
        if self.command in ("GET", "DELETE") and object_id in CREATED:
            if self.command == "DELETE":
                CREATED[object_id]["status"] = "canceled"
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
        elif kind == "subscription":
            obj.update(status="canceled" if self.command == "DELETE" else "active", start_date=int(time.time()))
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


# --- flaky meter events ------------------------------------------------------------------------

BILLED: dict[str, dict] = {}
STATE = {"requests": 0, "failures_left": 0}
LOCK = Lock()


class FlakyMeterHandler(JsonHandler):
    def do_GET(self):
        with LOCK:
            return self._reply(200, {"billed": list(BILLED.values()), "requests": STATE["requests"]})

    def do_POST(self):
        params = self._form()
        with LOCK:
            STATE["requests"] += 1
            BILLED.setdefault(params["identifier"], params)  # Stripe ignores a repeated identifier
            fail = STATE["failures_left"] > 0
            STATE["failures_left"] -= fail
        if fail:
            return self._reply(500, {"error": {"type": "api_error", "message": "response lost"}})
        return self._reply(200, {"object": "billing.meter_event", "livemode": False, **params})


# --- For tests -----------------------------------------------------------------------------------

def stripe_stub(settings, kind: str, *args: str, secret_key: str = "sk_test_stub"):
    """Start a `kind` stand-in and point the site's Stripe at it (real mode, not local test mode).
    Returns (server process, get) where get(path) reads one of its JSON pages."""
    from tests.support.processes import free_port, python_cmd, start_process

    port = free_port()
    server = start_process(f"{kind}-stripe", python_cmd("-m", "tests.support.stripe_stubs", kind, str(port), *args),
                           port=port)
    base = f"http://127.0.0.1:{port}"
    settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.PAYMENTS_TEST_MODE = secret_key, base, False

    def get(path: str) -> dict:
        with urllib.request.urlopen(f"{base}{path}", timeout=5) as response:
            return json.load(response)

    return server, get


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "flaky":
        STATE["failures_left"] = int(sys.argv[3])
    handler = {"recording": RecordingHandler, "flaky": FlakyMeterHandler}[kind]
    ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()
