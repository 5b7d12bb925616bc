"""HTTP(S) shards that survive a dropped connection: a reader that resumes with a Range request.

A long training run reads thousands of shards over the network; one connection reset in the
middle of a shard must not end the shard (``on_error="raise"``) or drop its rest (``"skip"``).
:func:`open_shard` opens ``http://`` and ``https://`` URLs with :class:`RangeRetryReader`, and
every other URL (local paths, ``file:``, ``pipe:``, cloud schemes) with webdataset's ``gopen``.

:class:`RangeRetryReader` is a plain binary stream. When the connection drops mid-body (a reset,
a timeout, the server closing before ``Content-Length`` bytes), it asks again from the byte where
it stopped (``Range: bytes=N-``), so the bytes it returns are exactly the file's, in order, as if
nothing had happened. Attempts that bring no new byte are retried a bounded number of times
(:class:`RetryPolicy`: ``retries``, with a backoff that doubles from ``backoff`` seconds up to
``max_backoff``); any byte of progress resets the count. Then it raises
:class:`RemoteReadError`, naming the URL, the byte, and how many retries were made.

What is retried: connection errors and timeouts, bodies cut short, and the statuses a server
uses for "try again" (408, 425, 429, 500, 502, 503, 504). What is not: 404 and 410 (raised as
``FileNotFoundError``, which the tar reader reports as ``missing_shard``) and any other status
(4xx: a wrong URL or missing credentials will not fix themselves). A server that ignores
``Range`` and answers 200 is read from the start again and the bytes already returned are passed
over; a file whose ``ETag`` or ``Last-Modified`` changed between two requests raises (the
continuation would splice two versions).

The policy comes from the environment, so that DataLoader workers (forked or spawned) share it:
``POINTER_STREAMS_HTTP_RETRIES`` (default 5), ``POINTER_STREAMS_HTTP_BACKOFF`` (seconds before
the first retry, default 1.0; then doubling), ``POINTER_STREAMS_HTTP_MAX_BACKOFF`` (default 30.0)
and ``POINTER_STREAMS_HTTP_TIMEOUT`` (seconds a connect or a read may block, default 60.0).
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import io
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import IO
from urllib.parse import urlparse

from webdataset.gopen import gopen

from ..checks import check_float, check_int

__all__ = ["RETRY_STATUSES", "RangeRetryReader", "RemoteReadError", "RetryPolicy", "is_http", "open_shard",
           "remote_size"]

RETRY_STATUSES = frozenset((408, 425, 429, 500, 502, 503, 504))
"""HTTP statuses answered with a retry: the server asks to come back later."""

_ENV = {"retries": "POINTER_STREAMS_HTTP_RETRIES", "backoff": "POINTER_STREAMS_HTTP_BACKOFF",
        "max_backoff": "POINTER_STREAMS_HTTP_MAX_BACKOFF", "timeout": "POINTER_STREAMS_HTTP_TIMEOUT"}
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_BUFFER_BYTES = 1 << 20


def is_http(url: str) -> bool:
    """Whether ``url`` is read by :class:`RangeRetryReader` (``http://`` or ``https://``).

    >>> is_http("https://host/train-000000.tar"), is_http("pipe:aws s3 cp s3://b/x.tar -")
    (True, False)
    """
    return urlparse(url).scheme in ("http", "https")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How hard a dropped HTTP read is retried.

    Args:
        retries: attempts after a failed one, in a row without a new byte (>= 0).
        backoff: seconds before the first retry (>= 0); doubled at each further retry.
        max_backoff: the longest wait between two attempts, in seconds.
        timeout: seconds a connect or a single read may block before it counts as dropped (> 0).

    >>> [RetryPolicy(backoff=1.0, max_backoff=5.0).delay(n) for n in (1, 2, 3, 4)]
    [1.0, 2.0, 4.0, 5.0]
    """

    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 30.0
    timeout: float = 60.0

    def __post_init__(self) -> None:
        check_int(self.retries, "retries")
        check_float(self.backoff, "backoff")
        check_float(self.max_backoff, "max_backoff")
        check_float(self.timeout, "timeout", include_minimum=False)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (retry - 1)))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """The policy the ``POINTER_STREAMS_HTTP_*`` variables set (module docstring); defaults otherwise."""
        environ = os.environ if environ is None else environ
        values: dict[str, float | int] = {}
        for field, variable in _ENV.items():
            text = environ.get(variable)
            if not text:
                continue
            try:
                values[field] = int(text) if field == "retries" else float(text)
            except ValueError as err:
                kind = "an integer" if field == "retries" else "a number of seconds"
                raise ValueError(f"{variable}={text!r} must be {kind}") from err
        try:
            return cls(**values)
        except ValueError as err:
            raise ValueError(f"{err} (from the environment: {', '.join(_ENV.values())})") from err


class RemoteReadError(OSError):
    """An HTTP(S) shard could not be read to its end; the message says where and after how many retries."""


class _Retry(Exception):
    """An attempt failed in a way worth another try."""


class RangeRetryReader(io.RawIOBase):
    """A binary stream over the file at an HTTP(S) ``url``, resuming dropped connections (module docstring).

    The first request is made here, so a missing file raises ``FileNotFoundError`` and a server
    that keeps answering 503 raises :class:`RemoteReadError` at open, like a local file would.
    ``sleep`` and ``opener`` (``urllib.request.urlopen``'s signature) exist for tests.
    """

    def __init__(self, url: str, policy: RetryPolicy | None = None, *, sleep: Callable[[float], None] = time.sleep,
                 opener: Callable[..., http.client.HTTPResponse] | None = None):
        super().__init__()
        if not is_http(url):
            raise ValueError(f"RangeRetryReader reads http:// and https:// URLs ({url!r} given)")
        self.url = url
        self.policy = policy if policy is not None else RetryPolicy.from_environment()
        self.position = 0
        self.length: int | None = None
        self.requests = 0
        self.retries = 0  # retries made over the whole read (each one after a failed attempt)
        self._sleep = sleep
        self._opener = opener or urllib.request.urlopen
        self._response: http.client.HTTPResponse | None = None
        self._version: tuple[str | None, str | None] | None = None
        self._finished = False
        self._with_retries(self._connect)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:
        if self._finished or len(buffer) == 0:
            return 0
        return self._with_retries(lambda: self._read_into(buffer))

    def close(self) -> None:
        self._drop()
        super().close()

    # one attempt ------------------------------------------------------------------------------
    def _read_into(self, buffer: memoryview | bytearray) -> int:
        if self._response is None:
            self._connect()
            if self._finished:
                return 0
        try:
            count = self._response.readinto(buffer)
        except (OSError, http.client.HTTPException) as err:
            raise _Retry(f"the connection dropped ({type(err).__name__}: {err})") from err
        if count == 0:
            if self.length is not None and self.position < self.length:
                raise _Retry("the server closed the connection before the end")
            self._finished = True
            self._drop()
            return 0
        self.position += count
        return count

    def _connect(self) -> None:
        self._drop()
        headers = {"User-Agent": "pointer-streams", "Accept-Encoding": "identity"}
        if self.position:
            headers["Range"] = f"bytes={self.position}-"
        self.requests += 1
        try:
            response = self._opener(urllib.request.Request(self.url, headers=headers), timeout=self.policy.timeout)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code in (404, 410):
                raise FileNotFoundError(f"{self.url}: HTTP {err.code} {err.reason}") from None
            if err.code == 416 and self.length is not None and self.position >= self.length:
                self._finished = True  # asked for the bytes after the last one
                return
            if err.code in RETRY_STATUSES:
                raise _Retry(f"HTTP {err.code} {err.reason}") from None
            raise RemoteReadError(f"{self.url}: HTTP {err.code} {err.reason} (not retried: check the URL and "
                                  "credentials)") from None
        except (OSError, http.client.HTTPException) as err:  # refused, reset, DNS, timeout (URLError is an OSError)
            raise _Retry(f"cannot connect ({type(err).__name__}: {err})") from err
        self._response = response
        self._check_version(response)
        status = response.status
        if status == 206:
            self._start_partial(response)
        elif status == 200:
            self._start_whole(response)
        else:
            self._drop()
            raise RemoteReadError(f"{self.url}: unexpected HTTP {status} to a GET (expected 200 or 206)")

    def _check_version(self, response: http.client.HTTPResponse) -> None:
        version = (response.headers.get("ETag"), response.headers.get("Last-Modified"))
        if self._version is None:
            self._version = version
            return
        for name, before, now in zip(("ETag", "Last-Modified"), self._version, version):
            if before is not None and now is not None and before != now:
                self._drop()
                raise RemoteReadError(f"{self.url}: the file changed on the server while it was read ({name} "
                                      f"{before} became {now} at byte {self.position:,}); read it again from the "
                                      "start")

    def _start_partial(self, response: http.client.HTTPResponse) -> None:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != self.position:
            self._drop()
            raise RemoteReadError(f"{self.url}: asked for bytes from {self.position:,} but the server sent "
                                  f"Content-Range {response.headers.get('Content-Range')!r}")
        if match.group(3) != "*":
            self.length = int(match.group(3))

    def _start_whole(self, response: http.client.HTTPResponse) -> None:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit():
            self.length = int(length)
        skip = self.position  # a server that ignores Range resends the start: pass over what was returned
        while skip:
            try:
                chunk = response.read(min(skip, _BUFFER_BYTES))
            except (OSError, http.client.HTTPException) as err:
                raise _Retry(f"the connection dropped while passing over the bytes already read "
                             f"({type(err).__name__}: {err})") from err
            if not chunk:
                raise _Retry("the server closed the connection before the bytes already read")
            skip -= len(chunk)

    def _drop(self) -> None:
        if self._response is not None:
            with contextlib.suppress(OSError):
                self._response.close()
            self._response = None

    # retries ----------------------------------------------------------------------------------
    def _with_retries(self, attempt: Callable[[], int | None]) -> int | None:
        failures = 0
        while True:
            try:
                return attempt()
            except _Retry as err:
                self._drop()
                if failures >= self.policy.retries:
                    where = (f"reading stopped at byte {self.position:,}"
                             + (f" of {self.length:,}" if self.length is not None else "")
                             if self.position or self.length is not None else "could not start reading")
                    raise RemoteReadError(
                        f"{self.url}: {where} ({err}); gave up after {failures} retr{'y' if failures == 1 else 'ies'} "
                        f"({self.requests} requests in all); check the server or the network, or allow more with "
                        f"{_ENV['retries']} and {_ENV['backoff']}") from None
                failures += 1
                self.retries += 1
                self._sleep(self.policy.delay(failures))


def remote_size(url: str, policy: RetryPolicy | None = None) -> int | None:
    """The ``Content-Length`` a ``HEAD`` request to ``url`` answers, or ``None`` when the server does
    not say or cannot be reached (a size is a nicety: reading reports real failures)."""
    policy = policy if policy is not None else RetryPolicy.from_environment()
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "pointer-streams"})
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout) as response:
            length = response.headers.get("Content-Length")
    except (OSError, http.client.HTTPException):
        return None
    return int(length) if length is not None and length.isdigit() else None


def open_shard(url: str) -> IO[bytes]:
    """A binary stream over the shard at ``url``: HTTP(S) through :class:`RangeRetryReader` (buffered),
    anything else through webdataset's ``gopen``."""
    if is_http(url):
        return io.BufferedReader(RangeRetryReader(url), buffer_size=_BUFFER_BYTES)
    return gopen(url)
