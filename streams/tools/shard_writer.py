"""Writing samples into WebDataset tar shards, with an index of per-shard sample counts.

Writing goes through webdataset's ``ShardWriter`` (rolls over to a new shard by count or size) with
a fixed mtime, so the same samples give byte-identical shards. Next to the shards, ``index.json``
records each shard's sample count and frames; readers use it to plan equal steps per rank without
reading the shards.

A shard set appears whole or not at all: shards are written into a hidden temporary folder beside
the output (``.pack-*``, same file system) and renamed into place only once every sample is
written, the index last; a failure or a signal (Ctrl-C; SIGTERM through the CLI) removes the
temporary folder and leaves the output as it was. An output that already holds shards of the
same pattern is refused, unless ``overwrite`` (``pack --overwrite``), which removes them and their
index entries once the new set is complete, so a pattern never matches old and new shards together.
"""

from __future__ import annotations

import fnmatch
import glob
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

import numpy as np
from webdataset import ShardWriter

from ..reading.shard_index import INDEX_NAME, read_index
from ..sample import Sample, SampleError

__all__ = ["INDEX_NAME", "existing_shards", "move_into_place", "read_index", "sample_members", "write_shards"]

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
        try:
            members["meta.json"] = json.dumps(sample.meta, sort_keys=True).encode()
        except (TypeError, ValueError) as err:
            raise SampleError(f"sample {sample.key!r}: its meta cannot be written as JSON ({err}); keep meta to "
                              "strings, numbers, lists and dicts", reason="bad_meta", key=sample.key,
                              member="meta.json") from err
    return members


def _frames(members: dict[str, bytes], name: str) -> int:
    stream = io.BytesIO(members[name])
    major, _ = np.lib.format.read_magic(stream)
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, _ = read_header(stream)
    return int(shape[-1]) if shape else 0


def _shard_glob(pattern: str) -> str:
    """``out/train-%06d.tar`` -> ``train-*.tar`` (the file names the pattern can produce, as a glob)."""
    parts = re.split(r"%\d*d", os.path.basename(pattern))
    return "*".join(glob.escape(part) for part in parts)


def existing_shards(pattern: str) -> list[str]:
    """File names in ``pattern``'s folder that it could have written, files or index entries, sorted."""
    directory = os.path.dirname(pattern) or "."
    names = glob.glob(_shard_glob(pattern), root_dir=directory) if os.path.isdir(directory) else []
    indexed = [name for name in read_index(directory) if fnmatch.fnmatch(name, _shard_glob(pattern))]
    return sorted(set(names) | set(indexed))


def shards_to_replace(pattern: str, overwrite: bool, command: str = "pack") -> list[str]:
    """The shards of ``pattern`` already in its folder (or its ``index.json``), which a new set
    replaces; raises ``ValueError`` when there are any and not ``overwrite``: a pattern over old and
    new shards would read samples twice."""
    old = existing_shards(pattern)
    if old and not overwrite:
        shown = ", ".join(old[:3]) + (f" and {len(old) - 3} more" if len(old) > 3 else "")
        raise ValueError(f"{os.path.dirname(pattern) or '.'} already holds shards of {os.path.basename(pattern)} "
                         f"({shown}); a pattern over old and new shards would read samples twice: pick an empty "
                         f"folder, or overwrite ({command} --overwrite) to replace them")
    return old


def write_shards(items: Iterable[Sample | tuple], pattern: str, *,
                 max_samples: int = 1000, max_bytes: float = 1e9, overwrite: bool = False) -> dict[str, dict[str, Any]]:
    """Write samples to shards named by ``pattern`` (``out/train-%06d.tar``); return the index.

    ``items`` are samples, or ``(key, members)`` pairs of already-encoded members (written as
    given, bit for bit), or ``(key, members, (raw_frames, edit_frames))`` for members without mels
    (audio shards). A new shard starts after ``max_samples`` samples or ``max_bytes`` bytes.
    The index (shard file name → samples, raw and edit frames, bytes) is merged into
    ``index.json`` in the shards' directory. The set appears only when complete (see the module
    docstring); an exception from ``items`` leaves the output untouched. Raises ``ValueError``
    when the folder already holds shards of this pattern, unless ``overwrite``.
    """
    if "%" not in pattern:
        raise ValueError(f"shard pattern {pattern!r} needs a %d-style field for the shard number, "
                         "like out/train-%06d.tar")
    if max_samples < 1 or max_bytes <= 0:
        raise ValueError(f"max_samples must be >= 1 and max_bytes > 0 (got {max_samples}, {max_bytes})")
    directory = os.path.dirname(pattern) or "."
    old = shards_to_replace(pattern, overwrite)
    os.makedirs(directory, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".pack-", dir=directory)
    try:
        entries = _write_into(items, os.path.join(staging, os.path.basename(pattern)), max_samples, max_bytes)
        move_into_place(staging, directory, entries, old)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entries


def _write_into(items: Iterable[Sample | tuple], pattern: str, max_samples: int,
                max_bytes: float) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    writer = ShardWriter(pattern, maxcount=max_samples, maxsize=max_bytes, verbose=0, mtime=_FIXED_MTIME,
                         encoder=False)
    try:
        for item in items:
            key, members = (item.key, sample_members(item)) if isinstance(item, Sample) else item[:2]
            frames = item[2] if isinstance(item, tuple) and len(item) == 3 else (
                _frames(members, "raw_mel.npy"), _frames(members, "edit_mel.npy"))
            writer.write({"__key__": key, **members})
            entry = entries.setdefault(os.path.basename(writer.fname),
                                       {"samples": 0, "raw_frames": 0, "edit_frames": 0, "bytes": 0})
            entry["samples"] += 1
            entry["raw_frames"] += frames[0]
            entry["edit_frames"] += frames[1]
            entry["bytes"] += sum(len(v) for v in members.values())
    finally:
        writer.close()
    return entries


def move_into_place(staging: str, directory: str, entries: dict[str, dict[str, Any]], old: list[str]) -> None:
    """Replace the ``old`` shards by the complete new set from ``staging``, then write the merged index (atomically)."""
    index = {name: entry for name, entry in read_index(directory).items() if name not in old}
    for name in old:
        if os.path.isfile(os.path.join(directory, name)):
            os.remove(os.path.join(directory, name))
    for name in entries:
        os.replace(os.path.join(staging, name), os.path.join(directory, name))
    index.update(entries)
    temporary = os.path.join(staging, INDEX_NAME)
    with open(temporary, "w") as f:
        json.dump({"shards": dict(sorted(index.items()))}, f, indent=1)
    os.replace(temporary, os.path.join(directory, INDEX_NAME))
