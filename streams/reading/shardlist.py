"""Which shards a reader reads: expanding URL patterns, checking them, ordering and splitting them.

The order of an epoch is one permutation of the whole list, drawn from (seed, epoch) alone (a
BLAKE2b-derived seed, never Python's ``hash`` or a process id), so every rank and worker of every
run computes the same order. Rank ``r`` of ``R`` then takes every ``R``-th shard of that order
starting at ``r``, and worker ``w`` of ``W`` within the rank every ``W``-th of those: ranks differ
by at most one shard, and a rank runs out of shards only when there are fewer shards than ranks
(workers may get none when ``R * W`` exceeds the number of shards).

Shards' sample counts (written by :func:`streams.tools.shard_writer.write_shards` into ``index.json``
next to the shards, or given by the user) let readers plan equal steps per rank without opening
any shard: see :func:`shard_sample_counts` and :mod:`streams.reading.epoch_plan`.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlparse

import braceexpand
from webdataset.gopen import gopen_schemes, rewrite_url
from webdataset.shardlists import expand_urls

from ..seeding import order_rng
from .remote import open_shard
from .shard_index import INDEX_NAME, read_index

__all__ = [
    "check_shards_openable",
    "epoch_shard_order",
    "expand_shard_urls",
    "is_local",
    "local_path",
    "shard_file_name",
    "shard_sample_counts",
    "shards_for_worker",
]

_GLOB_CHARS = frozenset("*?[")
_SHOWN = 3  # how many offending URLs an error message lists


def _listing(urls: Sequence[str]) -> str:
    shown = ", ".join(urls[:_SHOWN])
    return shown + (f" and {len(urls) - _SHOWN} more" if len(urls) > _SHOWN else "")


def expand_shard_urls(urls: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Expand brace patterns (``train-{000000..000099}.tar``), ``::``-joined lists and, for local
    paths, glob patterns (``train-*.tar``, sorted) into URLs.

    Accepts one pattern or a list of patterns (``pathlib.Path`` too). Raises ``ValueError`` for an
    unbalanced pattern, a glob that matches no file, an empty result, or a shard listed twice (it
    would be read twice per epoch; local paths are compared normalised, so ``d/x.tar`` and
    ``d/./x.tar`` are one shard).

    >>> expand_shard_urls("a-{0..2}.tar")
    ['a-0.tar', 'a-1.tar', 'a-2.tar']
    """
    patterns = [urls] if isinstance(urls, (str, os.PathLike)) else list(urls)
    expanded: list[str] = []
    for pattern in patterns:
        pattern = os.fspath(pattern) if isinstance(pattern, os.PathLike) else pattern
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"shard URLs must be non-empty strings (got {pattern!r})")
        try:
            braced = expand_urls(pattern)
        except braceexpand.UnbalancedBracesError as err:
            raise ValueError(f"shard pattern {pattern!r} has unbalanced braces ({err}); "
                             "write ranges as name-{000000..000099}.tar") from err
        for url in braced:
            if is_local(url) and _GLOB_CHARS & set(url):
                matches = sorted(glob.glob(local_path(url)))
                if not matches:
                    raise ValueError(f"no shards matched the pattern {url!r}; check the folder and the file names")
                expanded.extend(matches)
            else:
                expanded.append(url)
    if not expanded:
        raise ValueError(f"no shard URLs in {urls!r}")
    seen: set[str] = set()
    repeated = [url for url in expanded if _same_shard(url) in seen or seen.add(_same_shard(url))]
    if repeated:
        raise ValueError(f"shard URL(s) listed more than once: {_listing(repeated)}; list each shard once "
                         "(every listed shard is read once per epoch)")
    return expanded


def _same_shard(url: str) -> str:
    """What two URLs of one shard have in common: for local paths the absolute, normalised path
    (``/d/x.tar``, ``/d/./x.tar`` and ``file:/d/x.tar`` are one shard); other URLs as given."""
    return os.path.abspath(local_path(url)) if is_local(url) else url


def is_local(url: str) -> bool:
    """True for a plain path or a ``file:`` URL (opened directly, not through a command)."""
    return url.startswith("file:") or ":" not in url.split("/", 1)[0]


def local_path(url: str) -> str:
    """The file system path of a local shard URL."""
    return url[len("file:"):] if url.startswith("file:") else url


def check_shards_openable(urls: Sequence[str], *, skip_missing: bool = False) -> None:
    """Fail fast on shards that cannot be opened, without reading any of them.

    Local shards must exist as files, not folders (one ``os.path`` check each); remote URLs must use a scheme
    webdataset opens (``pipe:``, ``http(s):``, ``gs:``...), but are not fetched. Raises
    ``ValueError`` naming the first offending URLs. With ``skip_missing`` (``on_error="skip"``), local
    shards that are not files are left for reading to count, unless every shard is one of them.
    """
    missing = [url for url in urls if is_local(url) and not os.path.isfile(local_path(url))]
    if skip_missing and len(missing) < len(urls):
        urls = [url for url in urls if url not in missing]
        missing = []
    folders = [url for url in urls if is_local(url) and os.path.isdir(local_path(url))]
    if folders:
        raise ValueError(f"{_listing(folders)} is a folder, not a shard file; list the shard files inside it "
                         f"(a pattern like {os.path.join(local_path(folders[0]), '*.tar')})")
    if missing:
        what = (f"none of the {len(urls)} shard file(s) exist" if len(missing) == len(urls)
                else f"{len(missing)} of the {len(urls)} shard file(s) do not exist")
        raise ValueError(f"{what} ({_listing(missing)}); check the path or pattern (relative paths in a config "
                         "are relative to the config file)")
    schemes = sorted(set(gopen_schemes) - {"__default__"})
    unknown = [url for url in urls if not is_local(url) and urlparse(rewrite_url(url)).scheme not in schemes]
    if unknown:
        raise ValueError(f"cannot open shard URL(s) {_listing(unknown)}: the scheme is not one of {schemes}; "
                         "for other stores stream through a command, like \"pipe:aws s3 cp s3://bucket/x.tar -\"")


def shard_file_name(url: str) -> str:
    """The shard's file name, the key of its entry in ``index.json``.

    >>> shard_file_name("pipe:aws s3 cp s3://bucket/train-000001.tar -")
    'train-000001.tar'
    """
    if is_local(url):
        return os.path.basename(local_path(url))
    tokens = [token for token in url.split() if ".tar" in token] or [url]
    return os.path.basename(urlparse(tokens[-1]).path)


def _index_entries(location: str) -> dict[str, dict]:
    """The ``shards`` entries of the index file at a local path or any URL webdataset opens."""
    try:
        with open_shard(location) as stream:
            index = json.load(stream)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the shard index {location!r} ({type(err).__name__}: {err}); give the path "
                         f"or URL of an {INDEX_NAME} written by pack") from err
    if not isinstance(index, dict) or not isinstance(index.get("shards"), dict):
        raise ValueError(f"{location} is not a shard index (expected {{\"shards\": {{name: {{\"samples\": n}}}}}})")
    return index["shards"]


def _count(value: object, url: str) -> int:
    count = value.get("samples") if isinstance(value, Mapping) else value
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"sample count of shard {url} must be an int >= 0 ({count!r} given)")
    return count


def shard_sample_counts(urls: Sequence[str], given: str | Mapping[str, object] | Sequence[int] | None = None,
                        *, required: bool = False) -> list[int] | None:
    """Each shard's number of samples, from ``given`` or from ``index.json`` next to local shards.

    ``given`` is the path or URL of an index file written by pack, a mapping (shard URL or file
    name → count, or → an index entry ``{"samples": n}``), or a list of counts aligned with
    ``urls``. With ``given=None`` the counts come from the ``index.json`` of each local shard's
    folder. Returns ``None`` when some count is unknown (or a folder's ``index.json`` is not a
    shard index), unless ``required`` (then ``ValueError`` naming the shards without a count, or
    the bad index, and how to give counts).

    >>> shard_sample_counts(["a/x-0.tar", "b/x-1.tar"], {"x-0.tar": 5, "b/x-1.tar": {"samples": 3}})
    [5, 3]
    """
    if isinstance(given, Sequence) and not isinstance(given, str):
        if len(given) != len(urls):
            raise ValueError(f"sample_counts has {len(given)} counts for {len(urls)} shards; give one per shard, "
                             "in the order of the expanded URLs")
        return [_count(value, url) for value, url in zip(given, urls)]
    if isinstance(given, str):
        entries: dict[str, object] = dict(_index_entries(given))
    elif isinstance(given, Mapping):
        entries = dict(given)
    elif given is None:
        entries = {}
        for folder in sorted({os.path.dirname(local_path(url)) for url in urls if is_local(url)}):
            try:
                index = read_index(folder or ".")
            except ValueError:
                if required:
                    raise
                return None  # an index.json of another kind: counts are only needed for equal steps
            entries.update({os.path.join(folder, name): entry for name, entry in index.items()})
    else:
        raise ValueError(f"sample_counts must be an index path or URL, a mapping or a list of counts "
                         f"(got {type(given).__name__})")
    names = [shard_file_name(url) for url in urls]
    counts: list[int | None] = []
    for url, name in zip(urls, names):
        key = next((k for k in (url, local_path(url), name) if k in entries), None)
        if key == name and names.count(name) > 1:
            raise ValueError(f"sample count {name!r} is ambiguous: {names.count(name)} shards share that file name; "
                             "key the counts by full URL")
        counts.append(_count(entries[key], url) if key is not None else None)
    unknown = [url for url, count in zip(urls, counts) if count is None]
    if not unknown:
        return counts
    if required:
        raise ValueError(f"no sample count for shard(s) {_listing(unknown)}: pack writes {INDEX_NAME} next to the "
                         "shards; for remote shards or hand-made sets give sample_counts (the path or URL of an "
                         "index, or a mapping from shard name to count)")
    return None


def epoch_shard_order(num_shards: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """Indices of all shards in the order of ``epoch``; the same on every rank, worker and run.

    >>> epoch_shard_order(4, seed=0, epoch=0, shuffle=False)
    [0, 1, 2, 3]
    >>> sorted(epoch_shard_order(4, seed=0, epoch=1)) == [0, 1, 2, 3]
    True
    """
    if not shuffle:
        return list(range(num_shards))
    return order_rng(seed, epoch, "shards").permutation(num_shards).tolist()


def shards_for_worker(order: Sequence[int], rank: int, world_size: int, worker: int, num_workers: int) -> list[int]:
    """The part of ``order`` that DataLoader worker ``worker`` of rank ``rank`` reads.

    Rank first (every ``world_size``-th shard from ``rank``), then worker within the rank, so
    every shard goes to exactly one reader and ranks get shard counts that differ by at most one.

    Examples:
        >>> [shards_for_worker(range(5), rank, 2, worker, 2) for rank in (0, 1) for worker in (0, 1)]
        [[0, 4], [2], [1], [3]]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside [0, {world_size})")
    if not 0 <= worker < num_workers:
        raise ValueError(f"worker {worker} is outside [0, {num_workers})")
    return list(order[rank::world_size][worker::num_workers])
