"""Tar shard → records: the members of each sample, grouped by key, still undecoded.

Reading goes through webdataset's machinery (``gopen`` for every URL scheme it knows: local
paths, ``file:``, ``pipe:``, http(s), cloud CLIs; ``tar_file_iterator`` for streaming members).
Grouping is ours, because it must check what webdataset's grouping lets pass: a sample's members
must be adjacent, and a key may appear only once per shard.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

from webdataset.gopen import gopen
from webdataset.handlers import reraise_exception
from webdataset.tariterators import tar_file_iterator

from .sample import SampleError

__all__ = ["Record", "iter_records", "split_member_name"]

_MEMBER_NAME = re.compile(r"^((?:.*/|)[^./]+)\.([^/]+)$")


@dataclasses.dataclass
class Record:
    """The members of one sample in a shard: ``{"raw_mel.npy": b"...", ...}``, undecoded.

    ``index`` is the sample's position in its shard (0-based), its address for resuming.
    """

    key: str
    index: int
    members: dict[str, bytes]
    url: str


def split_member_name(name: str) -> tuple[str, str] | None:
    """``"dir/abc.raw_mel.npy"`` → ``("dir/abc", "raw_mel.npy")``: the key is everything before
    the first dot of the file name; ``None`` for a name without one.

    >>> split_member_name("s001.raw_mel.npy")
    ('s001', 'raw_mel.npy')
    """
    match = _MEMBER_NAME.match(name)
    return (match.group(1), match.group(2)) if match else None


def _members(url: str) -> Iterator[tuple[str, bytes]]:
    stream = gopen(url)
    try:
        for member in tar_file_iterator(stream, handler=reraise_exception):
            yield member["fname"], member["data"]
    finally:
        stream.close()


def iter_records(url: str) -> Iterator[Record]:
    """Yield the records of the shard at ``url`` in tar order.

    Raises :class:`~streams.sample.SampleError` (naming the shard and key) when a sample's members
    are split by another sample's, or a key or member name repeats; errors from opening or reading
    the tar propagate with the URL added by the caller.
    """
    current: Record | None = None
    seen: set[str] = set()
    index = 0
    for name, data in _members(url):
        parts = split_member_name(name)
        if parts is None:
            continue  # files without an extension (READMEs, directories' markers) are not members
        key, suffix = parts
        suffix = suffix.lower()
        if current is None or key != current.key:
            if current is not None:
                yield current
                index += 1
            if key in seen:
                raise SampleError(
                    f"shard {url}: members of sample {key!r} are not adjacent, or the key appears twice; "
                    "write each sample's members together (sort the files by key before tar) and keep keys unique",
                    reason="duplicate_key", key=key, url=url)
            seen.add(key)
            current = Record(key=key, index=index, members={}, url=url)
        if suffix in current.members:
            raise SampleError(f"shard {url}: sample {key!r} has member {suffix!r} twice; keep one",
                              reason="duplicate_member", key=key, url=url)
        current.members[suffix] = data
    if current is not None:
        yield current
