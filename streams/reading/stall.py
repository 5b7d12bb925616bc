"""A deadline on ``pipe:`` shard reads: a command that stops sending data fails instead of hanging.

webdataset opens ``pipe:CMD`` by running ``CMD`` in a shell and reading its standard output. A
command that stalls (a stuck network mount, a cloud CLI waiting on credentials or a dead
connection) blocks that read forever, and with it a DataLoader worker and the training loop.
:func:`open_shard_stream` wraps such a stream so that each read waits at most ``stall_timeout``
seconds for the next bytes; past that the command is killed and :class:`ReadStalled` is raised,
which the tar reader reports as a ``stalled_shard`` naming the shard. The same deadline covers
the command webdataset itself runs for ``gs:`` (``gsutil``); http(s) shards are read by
:mod:`streams.reading.remote`, whose reads have their own timeout; local files are returned as opened.
"""

from __future__ import annotations

import os
import select
import subprocess
from typing import Any

from webdataset.gopen import Pipe

from .remote import open_shard

__all__ = ["ReadStalled", "open_shard_stream"]

_CHUNK = 1 << 16


class ReadStalled(TimeoutError):
    """No data arrived from a ``pipe:`` command within the stall timeout (the command was killed)."""


def open_shard_stream(url: str, stall_timeout: float | None = None) -> Any:
    """Open ``url`` (:func:`streams.reading.remote.open_shard`: http(s) with Range retries and its own
    read timeout, the rest through webdataset's ``gopen``); when ``stall_timeout`` (seconds, > 0) is given,
    streams read from a command (``pipe:``, and the ``curl`` and ``gsutil`` webdataset runs for
    ``http(s):`` and ``gs:``) get a read deadline."""
    stream = open_shard(url)
    if stall_timeout is None or not isinstance(stream, Pipe):
        return stream
    return _DeadlineStream(stream, float(stall_timeout))


class _DeadlineStream:
    """A webdataset ``Pipe`` whose reads wait at most ``seconds`` for each chunk of output.

    Reads go to the pipe's file descriptor directly (``select`` then ``os.read``), so nothing
    sits in a Python buffer that ``select`` cannot see. Like a buffered file, a read returns
    fewer bytes than asked only at the end of the output (``tarfile`` sniffs compression from
    its first read); data that arrived before a stall is returned, and the next read raises.
    """

    def __init__(self, pipe: Any, seconds: float):
        self.pipe = pipe
        self.seconds = seconds
        self.fd = pipe.stream.fileno()
        self.stalled: ReadStalled | None = None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all, for a negative size), fewer only at the end of the output;
        each wait for more data is bounded by the deadline."""
        if self.stalled is not None:
            raise self.stalled
        chunks: list[bytes] = []
        wanted = size if size is not None and size >= 0 else None
        got = 0
        while wanted is None or got < wanted:
            try:
                chunk = self._read_some(_CHUNK if wanted is None else wanted - got)
            except ReadStalled as err:
                if not got:
                    raise
                self.stalled = err  # hand over what arrived; the next read raises
                break
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read_some(self, size: int) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], self.seconds)
        if not ready:
            self.pipe.proc.kill()
            raise ReadStalled(f"the command sent no data for {self.seconds:g} s (stall timeout) and was stopped")
        data = os.read(self.fd, size)
        if not data:
            self.pipe.check_status()  # a command that failed raises here, as webdataset's own reads do
        return data

    def close(self) -> None:
        """Close the output; a command that does not exit within the deadline is stopped. A failed
        command raises here (``OSError``), as webdataset's own ``close`` does."""
        if self.pipe.stream.closed:
            return
        self.pipe.stream.close()
        try:
            self.pipe.proc.wait(self.seconds)
        except subprocess.TimeoutExpired:
            self.pipe.proc.kill()
        self.pipe.wait_for_child()
