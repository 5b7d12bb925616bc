"""Writing samples into WebDataset tar shards, with an index of per-shard sample counts.

Writing goes through webdataset's ``ShardWriter`` (rolls over to a new shard by count or size) with
a fixed mtime, so the same samples give byte-identical shards. Next to the shards, ``index.json``
records each shard's sample count and frames; readers use it to plan equal steps per rank without
reading the shards.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
from webdataset import ShardWriter

from ..sample import Sample
from ..reading.shard_index import INDEX_NAME, read_index

__all__ = ["INDEX_NAME", "read_index", "sample_members", "write_shards"]

_FIXED_MTIME = 946684800.0  # 2000-01-01: reproducible tar headers


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def sample_members(sample: Sample) -> dict[str, bytes]:
    """The tar members of ``sample`` in the documented layout (dtypes kept as they are)."""
    members = {
        "raw_mel.npy": _npy_bytes(sample.raw_mel.numpy()),
        "edit_mel.npy": _npy_bytes(sample.edit_mel.numpy()),
        "pointers.npy": _npy_bytes(sample.pointers.numpy()),
    }
    if sample.meta:
        members["meta.json"] = json.dumps(sample.meta, sort_keys=True).encode()
    return members


def _frames(members: dict[str, bytes], name: str) -> int:
    stream = io.BytesIO(members[name])
    major, _ = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, _ = read_header(stream)
    return int(shape[-1]) if shape else 0


def write_shards(items: Iterable[Sample | tuple[str, dict[str, bytes]]], pattern: str, *,
                 max_samples: int = 1000, max_bytes: float = 1e9) -> dict[str, dict[str, Any]]:
    """Write samples to shards named by ``pattern`` (``out/train-%06d.tar``); return the index.

    ``items`` are samples, or ``(key, members)`` pairs of already-encoded members (written as
    given, bit for bit). A new shard starts after ``max_samples`` samples or ``max_bytes`` bytes.
    The index (shard file name → samples, raw and edit frames, bytes) is merged into
    ``index.json`` in the shards' directory.
    """
    if "%" not in pattern:
        raise ValueError(f"shard pattern {pattern!r} needs a %d-style field for the shard number, "
                         "like out/train-%06d.tar")
    if max_samples < 1 or max_bytes <= 0:
        raise ValueError(f"max_samples must be >= 1 and max_bytes > 0 (got {max_samples}, {max_bytes})")
    directory = os.path.dirname(pattern) or "."
    os.makedirs(directory, exist_ok=True)
    entries: dict[str, dict[str, Any]] = {}
    writer = ShardWriter(pattern, maxcount=max_samples, maxsize=max_bytes, verbose=0, mtime=_FIXED_MTIME,
                         encoder=False)
    try:
        for item in items:
            key, members = (item.key, sample_members(item)) if isinstance(item, Sample) else item
            writer.write({"__key__": key, **members})
            entry = entries.setdefault(os.path.basename(writer.fname),
                                       {"samples": 0, "raw_frames": 0, "edit_frames": 0, "bytes": 0})
            entry["samples"] += 1
            entry["raw_frames"] += _frames(members, "raw_mel.npy")
            entry["edit_frames"] += _frames(members, "edit_mel.npy")
            entry["bytes"] += sum(len(v) for v in members.values())
    finally:
        writer.close()
    index = {**read_index(directory), **entries}
    with open(os.path.join(directory, INDEX_NAME), "w") as f:
        json.dump({"shards": dict(sorted(index.items()))}, f, indent=1)
    return entries
