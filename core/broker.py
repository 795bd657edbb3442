"""The embedded broker: kombu's filesystem transport, with every message written whole before a
consumer can see it.

kombu writes a message in place (create the file, lock it, write), and its consumer takes no lock:
it can move and read the file between the create and the write, read an empty message and stop the
worker with a JSONDecodeError ("Unrecoverable error"), after which nothing on that worker's queues is
processed. Writing under a name no consumer lists and renaming it into place (atomic on POSIX, within
one folder) closes that window. Everything else is kombu's.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # The same name as kombu's (its consumers sort by the leading milliseconds).
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot and a trailing suffix: never "<anything>.<queue>.msg", so never listed.
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
