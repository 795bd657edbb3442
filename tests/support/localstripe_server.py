"""Run localstripe bound to 127.0.0.1, from scratch, keeping no state on disk.

localstripe's own CLI listens on all interfaces and reloads (and rewrites) /tmp/localstripe.pickle;
a test server must do neither.

    python tests/support/localstripe_server.py PORT
"""

import sys

from aiohttp import web
from localstripe import server
from localstripe.resources import store


def main() -> None:
    port = int(sys.argv[1])
    store.clear()
    store.dump_to_disk = lambda: None  # stateless: nothing written to /tmp between requests
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
