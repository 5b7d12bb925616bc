"""Reading a folder of samples to pack: ``.npy`` triplets or ``.pt`` dicts.

Layouts accepted (keys sorted, so packing is deterministic):

* ``KEY.raw_mel.npy``, ``KEY.edit_mel.npy``, ``KEY.pointers.npy`` and optionally ``KEY.meta.json``
  (the shard layout, one file per member); their bytes are packed unchanged;
* ``KEY.pt``: a ``torch.save``'d dict with tensors or arrays ``raw_mel``, ``edit_mel``,
  ``pointers`` and optionally a dict ``meta``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from ..reading.decode import META_MEMBER, REQUIRED_MEMBERS
from ..reading.tar_records import ReadLimits, split_member_name
from ..sample import Sample, SampleError
from .shard_writer import sample_members

__all__ = ["iter_sample_folder"]

_MEMBERS = (*REQUIRED_MEMBERS, META_MEMBER)


def _pt_sample(path: str, key: str) -> Sample:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise SampleError(f"{path}: cannot load it with torch.load ({type(err).__name__}: {err})",
                          reason="bad_pt", key=key) from err
    if not isinstance(data, dict) or not all(k in data for k in ("raw_mel", "edit_mel", "pointers")):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise SampleError(f"{path}: expected a dict with raw_mel, edit_mel, pointers (found {found})",
                          reason="missing_member", key=key)

    def tensor(name: str) -> torch.Tensor:
        value = data[name]
        return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))

    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise SampleError(f"{path}: meta must be a dict, got {type(meta).__name__}", reason="bad_meta", key=key)
    return Sample(key=key, raw_mel=tensor("raw_mel"), edit_mel=tensor("edit_mel"), pointers=tensor("pointers"),
                  meta=meta)


def iter_sample_folder(directory: str, *, limits: ReadLimits | None = None
                       ) -> Iterator[tuple[str, dict[str, bytes] | SampleError]]:
    """Yield ``(key, members)`` for every sample in ``directory``, sorted by key.

    Files that belong to neither layout are ignored. A ``.npy`` sample missing one of its three
    arrays is yielded with what it has, so the caller's check reports it by name. A sample whose
    files cannot be read (a folder where a file should be, a ``.pt`` that does not load, a meta
    that is not JSON, a file over its :class:`~streams.reading.tar_records.ReadLimits` size,
    which is not read) comes as ``(key, SampleError)``, so the caller reports it and goes on.
    """
    limits = limits or ReadLimits()
    if not os.path.isdir(directory):
        raise ValueError(f"{directory} is not a folder of samples")
    groups: dict[str, dict[str, str]] = {}
    for name in sorted(os.listdir(directory)):
        parts = split_member_name(name)
        if parts is None:
            continue
        key, suffix = parts
        if suffix in _MEMBERS or suffix == "pt":
            groups.setdefault(key, {})[suffix] = os.path.join(directory, name)
    for key in sorted(groups):
        try:
            yield key, _read_members(groups[key], key, limits)
        except SampleError as err:
            yield key, err


def _read_members(files: dict[str, str], key: str, limits: ReadLimits) -> dict[str, bytes]:
    """The members of one sample from its files (``suffix -> path``)."""
    if "pt" in files:
        return sample_members(_pt_sample(files["pt"], key))
    members = {}
    for suffix, path in files.items():
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        if size > limits.limit_for(suffix):
            raise SampleError(f"{path}: {size:,} bytes, over the {limits.limit_for(suffix):,}-byte limit for such "
                              "members; it is not read", reason="member_too_large", key=key, member=suffix)
        try:
            with open(path, "rb") as f:
                members[suffix] = f.read()
        except OSError as err:
            raise SampleError(f"{path}: cannot read it ({type(err).__name__}: {err}); sample files must be "
                              "readable regular files", reason="unreadable_file", key=key, member=suffix) from err
    return members
