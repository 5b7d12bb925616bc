"""The fast read path gives what the slow one gives: members read in one call equal tarfile's own
reads, ``.npy`` decoding equals ``numpy.load`` for every layout, and finiteness is checked exactly."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.reading.decode import _owned, decode_npy
from streams.reading.tar_records import iter_tar_members
from streams.sample import Sample, SampleError, check_sample

DTYPES = ("<f2", "<f4", ">f4", "<f8", "<i8", ">i4", "<i2", "|u1")


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(0, 7), min_size=0, max_size=3), dtype=st.sampled_from(DTYPES),
       fortran=st.booleans(), writable=st.booleans(), seed=st.integers(0, 1000))
def test_decoding_equals_numpy_load(shape, dtype, fortran, writable, seed):
    values = np.random.default_rng(seed).normal(scale=50.0, size=shape).astype(dtype)
    array = np.asfortranarray(values) if fortran else values
    data = _npy(array)
    decoded = decode_npy(bytearray(data) if writable else data, what="x")
    expected = np.load(io.BytesIO(data))
    assert decoded.shape == expected.shape and decoded.dtype == expected.dtype
    assert np.array_equal(decoded, expected)
    target = torch.float16 if dtype.endswith("f2") else torch.int64 if "i" in dtype or "u" in dtype else torch.float32
    owned = _owned(decoded, target)
    assert owned.is_contiguous() and owned.dtype == target
    with np.errstate(over="ignore"):
        assert torch.equal(owned, torch.from_numpy(expected.astype(owned.numpy().dtype, order="C")))


def test_a_float16_member_read_as_float16_shares_the_bytes_read():
    data = bytearray(_npy(np.arange(12, dtype=np.float16).reshape(3, 4)))
    tensor = _owned(decode_npy(data, what="x"), torch.float16)
    data[-2:] = np.float16(99).tobytes()  # the tensor views these bytes: no copy was made
    assert float(tensor[2, 3]) == 99.0


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.sampled_from([0, 1, 511, 512, 513, 10_239, 10_240, 10_241, 70_000]), min_size=1,
                      max_size=5), seed=st.integers(0, 100))
def test_members_read_in_one_call_equal_tarfiles_reads(tmp_path_factory, sizes, seed):
    rng = np.random.default_rng(seed)
    members = {f"k{i}.raw_mel.npy": rng.integers(0, 256, size, dtype=np.uint8).tobytes()
               for i, size in enumerate(sizes)}
    path = tmp_path_factory.mktemp("tar") / "t.tar"
    path.write_bytes(_tar(members))
    assert {name: bytes(data) for name, data in iter_tar_members(str(path))} == members


def test_a_member_cut_short_is_reported_as_truncated(tmp_path):
    data = _tar({"k.raw_mel.npy": b"a" * 30_000, "k.edit_mel.npy": b"b" * 30_000})
    path = tmp_path / "cut.tar"
    path.write_bytes(data[:512 * 3 + 20_000])  # inside the second member's data
    from streams.reading.tar_records import ShardReadError

    with pytest.raises(ShardReadError) as caught:
        list(iter_tar_members(str(path)))
    assert caught.value.reason == "truncated_shard" and caught.value.member is not None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_one_non_finite_value_is_found(value, dtype):
    raw = torch.zeros(4, 50, dtype=dtype)
    raw[3, 49] = value
    with pytest.raises(SampleError, match="holds 1 NaN or Inf values") as caught:
        check_sample(Sample("a", raw, torch.zeros(4, 2, dtype=dtype), torch.tensor([0, 1])))
    assert caught.value.reason == "not_finite"


@pytest.mark.parametrize("dtype, big", [(torch.float16, 60000.0), (torch.float32, 3e38)])
def test_huge_finite_values_are_finite_though_their_sum_is_not(dtype, big):
    raw = torch.full((4, 50), big, dtype=dtype)
    sample = Sample("a", raw, raw[:, :2].clone(), torch.tensor([0, 1]))
    assert check_sample(sample) is sample
