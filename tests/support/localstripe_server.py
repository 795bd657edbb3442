"""Run localstripe bound to 127.0.0.1, from scratch, keeping no state on disk.

localstripe's own CLI listens on all interfaces and reloads (and rewrites) /tmp/localstripe.pickle;
a test server must do neither. localstripe also refuses PaymentIntent's `transfer_group` (Stripe's
parameter tying a charge to its later Connect transfers); here it is accepted and kept on the
intent, as Stripe does, so the held-payment path runs against it unchanged.

    python tests/support/localstripe_server.py PORT
"""

import sys

from aiohttp import web
from localstripe import server
from localstripe.resources import PaymentIntent, store


def _keeping_transfer_group(init):
    def wrapped(self, *args, transfer_group=None, **kwargs):
        init(self, *args, **kwargs)
        self.transfer_group = transfer_group

    return wrapped


def main() -> None:
    port = int(sys.argv[1])
    store.clear()
    PaymentIntent.__init__ = _keeping_transfer_group(PaymentIntent.__init__)
    store.dump_to_disk = lambda: None  # stateless: nothing written to /tmp between requests
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
