"""Record → :class:`~streams.sample.Sample`: parse the ``.npy`` and ``.json`` members."""

from __future__ import annotations

import io
import json

import numpy as np
import torch

from .sample import Sample, SampleError
from .tar_records import Record

__all__ = ["MEL_DTYPES", "REQUIRED_MEMBERS", "decode_record", "decode_npy"]

REQUIRED_MEMBERS = ("raw_mel.npy", "edit_mel.npy", "pointers.npy")
META_MEMBER = "meta.json"
MEL_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def decode_npy(data: bytes, *, what: str) -> np.ndarray:
    """Parse ``.npy`` bytes (no pickles); ``what`` names the member in the error."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as err:  # numpy raises ValueError, EOFError, OSError... for bad bytes
        raise SampleError(f"{what} is not a valid .npy file ({type(err).__name__}: {err}); "
                          "write it with numpy.save", reason="bad_npy") from err


def _mel(array: np.ndarray, name: str, dtype: torch.dtype, where: str) -> torch.Tensor:
    if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):
        raise SampleError(f"{where}: {name} has dtype {array.dtype}; mels must be float16 or float32",
                          reason="bad_dtype")
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def decode_record(record: Record, *, mel_dtype: str = "float32") -> Sample:
    """Decode the members of ``record`` into a sample with float mels and int64 pointers.

    ``mel_dtype`` is ``"float32"`` (default) or ``"float16"`` (half the memory). Members other
    than the three arrays and ``meta.json`` are ignored. Shapes and values are not checked here
    (see :func:`~streams.sample.check_sample`), only that each member parses.
    """
    where = f"sample {record.key!r} in shard {record.url}"
    missing = [m for m in REQUIRED_MEMBERS if m not in record.members]
    if missing:
        present = sorted(record.members) or "none"
        raise SampleError(f"{where}: missing member(s) {', '.join(missing)} (present: {present}); "
                          f"every sample needs {', '.join(REQUIRED_MEMBERS)}",
                          reason="missing_member", key=record.key, url=record.url)
    try:
        arrays = {m: decode_npy(record.members[m], what=f"{where}: member {m}") for m in REQUIRED_MEMBERS}
        dtype = MEL_DTYPES[mel_dtype]
        raw = _mel(arrays["raw_mel.npy"], "raw_mel", dtype, where)
        edit = _mel(arrays["edit_mel.npy"], "edit_mel", dtype, where)
        pointer_array = arrays["pointers.npy"]
        if pointer_array.dtype.kind not in "iu":
            raise SampleError(f"{where}: pointers have dtype {pointer_array.dtype}; store them as integers",
                              reason="bad_dtype")
        if pointer_array.dtype.kind == "u" and pointer_array.size and int(pointer_array.max()) > np.iinfo(np.int64).max:
            raise SampleError(f"{where}: pointers exceed int64", reason="pointer_out_of_range")
        pointers = torch.from_numpy(pointer_array.astype(np.int64, copy=False).copy() if pointer_array.dtype != np.int64
                                    else np.ascontiguousarray(pointer_array))
        meta = {}
        if META_MEMBER in record.members:
            try:
                meta = json.loads(record.members[META_MEMBER])
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise SampleError(f"{where}: meta.json is not valid JSON ({err}); fix or remove it",
                                  reason="bad_meta") from err
            if not isinstance(meta, dict):
                raise SampleError(f"{where}: meta.json must hold a JSON object, got {type(meta).__name__}",
                                  reason="bad_meta")
    except SampleError as err:
        err.key, err.url = record.key, record.url
        raise
    return Sample(key=record.key, raw_mel=raw, edit_mel=edit, pointers=pointers, meta=meta, url=record.url)
