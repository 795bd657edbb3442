"""The brokers' transports: kombu's own, each with one fix.

`Transport` (the embedded broker): kombu's filesystem transport, with every message written whole
before a consumer can see it.

kombu writes a message in place (create the file, lock it, write), and its consumer takes no lock:
it can move and read the file between the create and the write, read an empty message and stop the
worker with a JSONDecodeError ("Unrecoverable error"), after which nothing on that worker's queues is
processed. Writing under a name no consumer lists and renaming it into place (atomic on POSIX, within
one folder) closes that window. Everything else is kombu's.

`RedisTransport` (a Redis broker): kombu's redis transport, surviving a broker that goes away while
a worker holds unacknowledged messages. On the lost connection Celery releases it, and closing its
channel tries to give those messages back to Redis through a connection already detached from its
transport: kombu reads the host from `None` and the worker exits for good with "Unrecoverable
error: AttributeError('NoneType' object has no attribute 'hostname')" — on a threads pool, which
always holds some, after any broker restart. Here that reads as what it is, a connection error, which
Celery ignores while closing and then reconnects; the messages stay in Redis' unacked set and are
restored by the next consumer once the visibility timeout passes (README: "Workers and broker
outages").
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

import redis.exceptions
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport import redis as kombu_redis
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


class RedisChannel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            raise redis.exceptions.ConnectionError("The broker connection was closed meanwhile.")
        return super()._connparams(asynchronous=asynchronous)


class RedisTransport(kombu_redis.Transport):
    Channel = RedisChannel
