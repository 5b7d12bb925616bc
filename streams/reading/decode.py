"""Record → :class:`~streams.sample.Sample`: parse the ``.npy`` and ``.json`` members.

Decoding checks that each member parses and has a usable dtype; shapes and values are checked by
:func:`~streams.sample.check_sample`. Every failure is a :class:`~streams.sample.SampleError`
naming the shard, the key and the member, with a reason from :data:`DECODE_REASONS`; so is any
other exception raised while decoding or checking one sample (:func:`decode_sample`), so that it
meets the source's error policy instead of stopping the stream.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import warnings

import numpy as np
import torch

from ..checks import check_choice
from ..sample import Sample, SampleError, check_sample
from .tar_records import REQUIRED_MEMBERS, Record, member_error

__all__ = ["DECODE_REASONS", "MEL_DTYPES", "META_MEMBER", "REQUIRED_MEMBERS", "decode_npy", "decode_record",
           "decode_sample"]

META_MEMBER = "meta.json"
MEL_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}
_TORCH_COPIES = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                                np.int64, np.uint8))
"""Array dtypes torch converts from directly (``copy_`` from a ``from_numpy`` view)."""
DECODE_REASONS = ("bad_dtype", "bad_meta", "bad_npy", "decode_error", "missing_member", "pointer_out_of_range")
"""Reasons :func:`decode_record` raises (besides the grouping problems a record carries)."""


_PLAIN_HEADER = re.compile(rb"\{'descr': '([<>|=]?[fiub][1248])', 'fortran_order': (True|False), "
                           rb"'shape': \(((?:\d+, ?)*\d*)\), \} *\n")
"""The header ``numpy.save`` writes for a plain numeric array (version 1.0), parsed without
``ast.literal_eval`` (about 0.4 ms a header, more than decoding a short mel); any other header
takes numpy's own parser."""


def _npy_layout(data: bytes | bytearray) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran order, dtype, header bytes)`` from the header of ``.npy`` bytes."""
    if data[:8] == b"\x93NUMPY\x01\x00" and len(data) >= 10:
        header_bytes = 10 + int.from_bytes(data[8:10], "little")
        match = _PLAIN_HEADER.fullmatch(bytes(data[10:header_bytes]))
        if match is not None:
            shape = tuple(int(n) for n in match.group(3).split(b",") if n.strip())
            return shape, match.group(2) == b"True", np.dtype(match.group(1).decode()), header_bytes
    stream = io.BytesIO(bytes(data[:1 << 16]))  # the header only (numpy refuses longer ones)
    major, _ = np.lib.format.read_magic(stream)
    if major not in (1, 2, 3):
        raise ValueError(f".npy format version {major} is unknown")
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read_header(stream)
    return shape, fortran_order, dtype, stream.tell()


def _declared_count(shape: tuple, what: str) -> int:
    """Elements a header's ``shape`` declares, in exact integers (a product taken in int64 wraps:
    ``(2**32, 2**32)`` would declare 0 elements); negative sizes are refused."""
    if any(not isinstance(size, int) or size < 0 for size in shape):
        raise SampleError(f"{what}: its header declares shape {shape}, with a negative size; "
                          "re-write it with numpy.save", reason="bad_npy")
    return math.prod(shape)


def decode_npy(data: bytes | bytearray, *, what: str) -> np.ndarray:
    """Parse ``.npy`` bytes (no pickles); ``what`` names the member in the error.

    Returns a view of ``data`` (no copy; writable when ``data`` is a ``bytearray``, as the tar
    reader gives; the caller's dtype conversion, if any, is the one copy).
    The header is checked against the data length first, so a cut or padded member is reported
    as such (and a header claiming a huge shape allocates nothing).

    >>> import io
    >>> buffer = io.BytesIO(); np.save(buffer, np.arange(3)); decode_npy(buffer.getvalue(), what="x").tolist()
    [0, 1, 2]
    >>> decode_npy(buffer.getvalue()[:-4], what="x")
    Traceback (most recent call last):
    ...
    streams.sample.SampleError: x: 20 bytes of array data but its header declares shape (3,) of int64 (24 bytes), \
so it is cut short or padded; re-write it with numpy.save
    """
    try:
        shape, fortran_order, dtype, header_bytes = _npy_layout(data)
    except Exception as err:  # numpy raises ValueError, EOFError, SyntaxError... for a bad header
        raise SampleError(f"{what}: not a valid .npy file ({type(err).__name__}: {err}); "
                          "write it with numpy.save", reason="bad_npy") from err
    if dtype.hasobject:
        raise SampleError(f"{what}: holds Python objects (a pickle); write numeric arrays with numpy.save",
                          reason="bad_npy")
    count = _declared_count(shape, what)
    expected = count * dtype.itemsize
    if len(data) - header_bytes != expected:
        raise SampleError(f"{what}: {len(data) - header_bytes} bytes of array data but its header declares "
                          f"shape {shape} of {dtype} ({expected} bytes), so it is cut short or padded; "
                          "re-write it with numpy.save", reason="bad_npy")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=header_bytes)
    return flat.reshape(shape, order="F" if fortran_order else "C")


def _owned(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A tensor owning a C-ordered, native-endian ``array`` converted to ``dtype``: at most one pass.

    ``array`` views the member's bytes. When they are writable (the ``bytearray`` the tar reader
    fills) and already C-ordered, native and of ``dtype``, the tensor shares them: no copy at all
    (float16 shards read as float16). Otherwise torch converts in one pass into a new C-ordered
    tensor (Fortran-ordered arrays too, about twice as fast as numpy's ``astype``). Values too
    large for ``dtype`` become inf, which the sample check then reports as not finite.
    """
    if array.dtype.isnative and array.dtype == _NUMPY_DTYPES[dtype] and array.flags.c_contiguous \
            and array.flags.writeable:
        return torch.from_numpy(array)
    if array.dtype in _TORCH_COPIES and (array.flags.c_contiguous or array.flags.f_contiguous):
        with warnings.catch_warnings():  # a view of read-only bytes: torch only reads it
            warnings.simplefilter("ignore", UserWarning)
            return torch.empty(array.shape, dtype=dtype).copy_(torch.from_numpy(array))
    with np.errstate(over="ignore"):
        return torch.from_numpy(array.astype(_NUMPY_DTYPES[dtype], order="C"))


def decode_record(record: Record, *, mel_dtype: str = "float32") -> Sample:
    """Decode the members of ``record`` into a sample with float mels and int64 pointers.

    ``mel_dtype`` is ``"float32"`` (default) or ``"float16"`` (half the memory); mels stored as
    float16, float32 or float64 are converted to it. Pointers of any integer dtype become int64.
    Members other than the three arrays and ``meta.json`` are ignored. A record whose grouping
    found a problem (``record.problem``) raises that problem.

    Raises :class:`~streams.sample.SampleError` with ``key``, ``url`` and ``member`` set:
    ``missing_member``, ``bad_npy`` (does not parse, cut short, pickled), ``bad_dtype`` (integer
    or complex mels, float or bool pointers), ``pointer_out_of_range`` (unsigned pointers beyond
    int64), ``bad_meta`` (``meta.json`` not a JSON object).
    """
    if record.problem is not None:
        raise record.problem
    check_choice(mel_dtype, "mel_dtype", tuple(MEL_DTYPES))
    where = f"sample {record.key!r} in shard {record.url}"
    fail = functools.partial(member_error, record)
    missing = [m for m in REQUIRED_MEMBERS if m not in record.members]
    if missing:
        present = ", ".join(sorted(record.members)) or "none"
        raise fail("missing_member", missing[0], f"missing member(s) {', '.join(missing)} (present: {present}); "
                                                 f"every sample needs {', '.join(REQUIRED_MEMBERS)}")
    arrays = {}
    for member in REQUIRED_MEMBERS:
        try:
            arrays[member] = decode_npy(record.members[member], what=f"{where}, member {member}")
        except SampleError as err:
            err.key, err.url, err.member = record.key, record.url, member
            raise
    mels = []
    for member in ("raw_mel.npy", "edit_mel.npy"):
        array = arrays[member]
        if array.dtype.kind != "f" or array.dtype.itemsize not in (2, 4, 8):
            raise fail("bad_dtype", member, f"dtype {array.dtype}; mels must be float16, float32 or float64 "
                                            "(re-export the mel as floats)")
        mels.append(_owned(array, MEL_DTYPES[mel_dtype]))
    pointer_array = arrays["pointers.npy"]
    if pointer_array.dtype.kind not in "iu":
        raise fail("bad_dtype", "pointers.npy", f"dtype {pointer_array.dtype}; store pointers as integers "
                                                "(int64 or int32 raw frame indices)")
    if pointer_array.dtype.kind == "u" and pointer_array.size and int(pointer_array.max()) > np.iinfo(np.int64).max:
        raise fail("pointer_out_of_range", "pointers.npy", f"pointer {int(pointer_array.max())} exceeds int64; "
                                                           "pointers must be raw frame indices in [0, T_raw)")
    pointers = _owned(pointer_array, torch.int64)
    meta = {}
    if META_MEMBER in record.members:
        try:
            meta = json.loads(record.members[META_MEMBER])
        except (ValueError, RecursionError) as err:  # bad JSON, bad UTF-8, integers past Python's digit limit
            raise fail("bad_meta", META_MEMBER, f"not valid JSON ({type(err).__name__}: {err}); fix or remove it"
                       ) from err
        if not isinstance(meta, dict):
            raise fail("bad_meta", META_MEMBER, f"must hold a JSON object, got {type(meta).__name__}; "
                                                "wrap the values in {...}")
    return Sample(key=record.key, raw_mel=mels[0], edit_mel=mels[1], pointers=pointers, meta=meta, url=record.url)


def decode_sample(record: Record, *, mel_dtype: str = "float32", check: bool = True) -> Sample:
    """:func:`decode_record`, then :func:`~streams.sample.check_sample` (unless ``check`` is false).

    Any exception raised on the way becomes a :class:`~streams.sample.SampleError` of the record
    (``decode_error``, naming the shard, key and exception), so that one malformed sample meets
    the caller's error policy (counted and skipped, or reported) and never ends the stream or a
    shard check with an unrelated exception type.
    """
    try:
        sample = decode_record(record, mel_dtype=mel_dtype)
        if check:
            check_sample(sample)
        return sample
    except SampleError:
        raise
    except Exception as err:
        raise SampleError(f"sample {record.key!r} in shard {record.url}: decoding failed ({type(err).__name__}: "
                          f"{err}); check or re-write its members", reason="decode_error", key=record.key,
                          url=record.url) from err
