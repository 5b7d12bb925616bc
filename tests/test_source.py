"""Reading shards: the documented layout from any writer, worker splitting, round trips."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import numpy as np
import pytest
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from streams import Pipe, Sample
from streams.tools.shard_writer import read_index, sample_members

from .conftest import DEMO_SAMPLES


def _keys(items) -> list[str]:
    return [k for item in items for k in (item.keys if hasattr(item, "keys") and not isinstance(item, Sample)
                                          else [item.key])]


@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_dataloader_yields_every_demo_sample_once_per_epoch(demo_urls, num_workers):
    pipe = Pipe.from_shards(demo_urls, seed=3)
    loader = DataLoader(pipe, batch_size=None, num_workers=num_workers)
    for epoch in range(2):
        pipe.set_epoch(epoch)
        keys = [s.key for s in loader]
        assert len(keys) == DEMO_SAMPLES
        assert len(set(keys)) == DEMO_SAMPLES


def test_epochs_change_shard_order_but_not_content(demo_urls):
    pipe = Pipe.from_shards(demo_urls, seed=0)
    orders = []
    for epoch in range(3):
        pipe.set_epoch(epoch)
        orders.append([s.key for s in pipe])
    assert len({tuple(o) for o in orders}) > 1
    assert all(sorted(o) == sorted(orders[0]) for o in orders)
    pipe.set_epoch(1)
    assert [s.key for s in pipe] == orders[1]


def test_round_trip_is_bit_exact_and_plain_webdataset_reads_our_shards(make_shards):
    pattern, samples = make_shards(7, 3, dtype=torch.float16)
    read = {s.key: s for s in Pipe.from_shards(pattern, mel_dtype="float16")}
    assert sorted(read) == sorted(s.key for s in samples)
    for s in samples:
        r = read[s.key]
        assert r.raw_mel.dtype == torch.float16
        assert torch.equal(r.raw_mel, s.raw_mel) and torch.equal(r.edit_mel, s.edit_mel)
        assert torch.equal(r.pointers, s.pointers) and r.pointers.dtype == torch.int64
        assert r.meta == s.meta
    plain = list(wds.WebDataset(pattern, shardshuffle=False).decode())
    assert sorted(x["__key__"] for x in plain) == sorted(read)
    first = next(x for x in plain if x["__key__"] == samples[0].key)
    assert np.array_equal(first["raw_mel.npy"], samples[0].raw_mel.numpy())
    shard = pattern.replace("{000000..000002}", "000000")
    listing = subprocess.run(["tar", "-tf", shard], capture_output=True, text=True, check=True).stdout.split()
    assert f"{samples[0].key}.pointers.npy" in listing


def test_float32_default_decodes_float16_shards_to_float32(make_shards):
    pattern, samples = make_shards(3, 3, dtype=torch.float16)
    sample = next(iter(Pipe.from_shards(pattern)))
    assert sample.raw_mel.dtype == torch.float32


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _write_tar(path, members: dict[str, bytes]) -> None:
    """A tar made with Python's tarfile: ``members`` maps member names to their bytes, in order."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_shards_made_with_python_tarfile_read(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "by-tarfile.tar"
    expected, members = {}, {}
    for i in range(4):
        key = f"dir/utt{i}"
        raw = rng.normal(size=(5, 30)).astype(np.float32)
        pointers = rng.integers(0, 30, size=12).astype(np.int16)  # any integer dtype
        members.update({f"{key}.raw_mel.npy": _npy(raw), f"{key}.edit_mel.npy": _npy(raw[:, pointers]),
                        f"{key}.pointers.npy": _npy(pointers), f"{key}.meta.json": json.dumps({"i": i}).encode(),
                        f"{key}.notes.txt": b"extra members are ignored"})
        expected[key] = (raw, pointers, i)
    _write_tar(path, members)
    samples = list(Pipe.from_shards(str(path)))
    assert [s.key for s in samples] == list(expected)
    for s in samples:
        raw, pointers, i = expected[s.key]
        assert np.array_equal(s.raw_mel.numpy(), raw)
        assert s.pointers.tolist() == pointers.tolist()
        assert s.meta == {"i": i}


def test_shards_made_with_gnu_tar_read(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        raw = rng.normal(size=(4, 20)).astype(np.float32)
        pointers = np.arange(10, dtype=np.int64)
        np.save(folder / f"s{i}.raw_mel.npy", raw)
        np.save(folder / f"s{i}.edit_mel.npy", raw[:, pointers])
        np.save(folder / f"s{i}.pointers.npy", pointers)
    names = sorted(os.listdir(folder))
    shard = tmp_path / "gnu.tar"
    subprocess.run(["tar", "-cf", str(shard), "-C", str(folder), *names], check=True)
    assert [s.key for s in Pipe.from_shards(str(shard))] == ["s0", "s1", "s2"]
    assert [s.key for s in Pipe.from_shards("file:" + str(shard))] == ["s0", "s1", "s2"]
    assert [s.key for s in Pipe.from_shards(f"pipe:cat {shard}")] == ["s0", "s1", "s2"]


def test_index_records_sample_counts(make_shards):
    pattern, samples = make_shards(7, 3)
    index = read_index(os.path.dirname(pattern))
    assert [entry["samples"] for _, entry in sorted(index.items())] == [3, 3, 1]
    assert sum(e["raw_frames"] for e in index.values()) == sum(s.raw_frames for s in samples)


def test_sample_members_keep_dtypes():
    sample = Sample("k", torch.zeros(2, 3, dtype=torch.float16), torch.zeros(2, 1, dtype=torch.float16),
                    torch.tensor([1], dtype=torch.int32))
    members = sample_members(sample)
    assert np.load(io.BytesIO(members["pointers.npy"])).dtype == np.int32
    assert "meta.json" not in members


def test_big_endian_and_fortran_ordered_npy_members_decode_to_the_same_values(tmp_path):
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(3, 9)).astype(np.float32)
    pointers = np.array([8, 0, 4], dtype=">i4")  # big-endian int32
    members = {"raw_mel.npy": _npy(np.asfortranarray(raw.astype(">f4"))), "edit_mel.npy": _npy(raw[:, [8, 0, 4]]),
               "pointers.npy": _npy(pointers)}
    path = tmp_path / "odd.tar"
    _write_tar(path, {f"k.{suffix}": data for suffix, data in members.items()})
    (sample,) = list(Pipe.from_shards(str(path), mel_dtype="float16"))
    assert sample.raw_mel.dtype == torch.float16 and sample.raw_mel.is_contiguous()
    assert torch.equal(sample.raw_mel, torch.from_numpy(raw).half())
    assert sample.pointers.tolist() == [8, 0, 4] and sample.pointers.dtype == torch.int64


def test_members_decoding_ignores_are_listed_but_not_read(tmp_path):
    from streams.reading.tar_records import iter_records

    raw = np.zeros((2, 4), dtype=np.float32)
    members = {"raw_mel.npy": _npy(raw), "edit_mel.npy": _npy(raw[:, :1]), "pointers.npy": _npy(np.array([3])),
               "wav": b"\x00" * 100_000}
    path = tmp_path / "with-audio.tar"
    _write_tar(path, {f"k.{suffix}": data for suffix, data in members.items()})
    (record,) = list(iter_records(str(path)))
    assert record.members["wav"] is None and record.members["pointers.npy"] == members["pointers.npy"]
    assert [s.key for s in Pipe.from_shards(str(path))] == ["k"]
