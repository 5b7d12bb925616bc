"""Bad input: every broken shard or sample gives a clear error, or a counted skip; nothing is lost silently.

Each test builds its broken shard itself (with ``tarfile`` and ``numpy.save``), then reads it under
both ``on_error`` policies: ``"raise"`` must stop with an error naming the shard, the key and the
member; ``"skip"`` must yield exactly the good samples (each passing ``check_sample``) and account
for the rest, with ``read == yielded + skipped``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import pickle
import tarfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipelines.cli import main
from pipelines.run import run_pipeline
from streams import Pipe, SampleError, ShardReadError, check_sample
from streams.origin import source_samples
from streams.reading.skip_ledger import SkipLedger
from streams.reading.skips import SkipReport
from streams.reading.tar_records import iter_records
from streams.tools.shard_check import check_shards

N_MELS, RAW, EDIT = 4, 6, 5


# --- building shards ------------------------------------------------------------------------------

def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def arrays(index: int = 0) -> dict[str, np.ndarray]:
    """A good sample's arrays: raw frames distinct, edit frames copied through the pointers."""
    raw = np.arange(N_MELS * RAW, dtype=np.float32).reshape(N_MELS, RAW) + 100 * index
    pointers = np.array([5, 0, 2, 2, 1], dtype=np.int64)
    return {"raw_mel.npy": raw, "edit_mel.npy": raw[:, pointers], "pointers.npy": pointers}


def members(index: int = 0, **overrides: bytes | np.ndarray | None) -> dict[str, bytes]:
    """Members of a good sample, with some replaced (arrays are saved) or removed (``None``)."""
    out = {name: npy(array) for name, array in arrays(index).items()}
    out["meta.json"] = json.dumps({"index": index}).encode()
    for name, value in overrides.items():
        name = name.replace("__", ".")
        if value is None:
            out.pop(name, None)
        else:
            out[name] = npy(value) if isinstance(value, np.ndarray) else value
    return out


def tar_entries(samples: list[tuple[str, dict[str, bytes]]]) -> list[tuple[str, bytes]]:
    """Members in the usual sorted order, one sample after another."""
    return [(f"{key}.{name}", data) for key, parts in samples for name, data in sorted(parts.items())]


def write_tar(path, entries: list[tuple[str, bytes]]) -> str:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def good_shard(path, keys: list[str], first_index: int = 0) -> str:
    return write_tar(path, tar_entries([(key, members(first_index + i)) for i, key in enumerate(keys)]))


def member_offsets(path: str) -> dict[str, tuple[int, int, int]]:
    """``name -> (header offset, data offset, data size)`` of each member."""
    with tarfile.open(path) as tar:
        return {info.name: (info.offset, info.offset_data, info.size) for info in tar.getmembers()}


def cut(path: str, length: int, out) -> str:
    with open(path, "rb") as f:
        data = f.read()
    with open(out, "wb") as f:
        f.write(data[:length])
    return str(out)


# --- reading and accounting -----------------------------------------------------------------------

def read_skipping(urls, **options) -> tuple[list, SkipReport]:
    pipe = Pipe.from_shards(urls, on_error="skip", shuffle_shards=False, **options)
    samples = list(pipe)
    return samples, pipe.skip_report()


def assert_accounted(samples: list, report: SkipReport, *, skipped: dict[str, int], damaged: int = 0) -> None:
    """The identity, the yielded samples all valid, and the skips as expected by reason."""
    for sample in samples:
        check_sample(sample)
    assert report.read == report.yielded + report.skipped
    assert report.balanced
    assert report.yielded == len(samples)
    assert {reason: n for reason, n in report.by_reason().items() if n} == skipped
    assert report.damaged_shards == damaged
    assert report.finished_passes == report.passes == 1


def read_raising(urls) -> tuple[list, Exception]:
    """The samples yielded before the error, and the error."""
    pipe = Pipe.from_shards(urls, shuffle_shards=False)
    got = []
    with pytest.raises((SampleError, ShardReadError)) as info:
        for sample in pipe:
            got.append(sample)
    return got, info.value


# --- truncated tars -------------------------------------------------------------------------------

def _cut_points(path: str) -> dict[str, tuple[int, list[str], str | None]]:
    """Where to cut the shard a, b, c: ``case -> (length, keys yielded, key lost or None)``."""
    at = member_offsets(path)
    c_first, c_second = (at[name] for name in ("c.edit_mel.npy", "c.meta.json"))
    b_last = at["b.raw_mel.npy"]
    c_last = at["c.raw_mel.npy"]
    return {
        "mid_member_data": (c_second[1] + 3, ["a", "b"], "c"),
        "mid_first_member_of_next_sample": (c_first[1] + 10, ["a", "b"], "c"),
        "mid_header_between_samples": (c_first[0] + 100, ["a", "b"], None),
        "at_member_boundary_between_samples": (c_first[0], ["a", "b"], None),
        "inside_padding_after_a_sample": (b_last[1] + b_last[2] + 1, ["a", "b"], None),
        "mid_header_inside_a_sample": (c_second[0] + 200, ["a", "b"], "c"),
        "missing_end_of_archive_marker": (c_last[1] + c_last[2] + (-c_last[2] % 512), ["a", "b", "c"], None),
    }


CUTS = ["mid_member_data", "mid_first_member_of_next_sample", "mid_header_between_samples",
        "at_member_boundary_between_samples", "inside_padding_after_a_sample", "mid_header_inside_a_sample",
        "missing_end_of_archive_marker"]


@pytest.mark.parametrize("case", CUTS)
def test_truncated_tar_yields_complete_samples_then_raises(tmp_path, case):
    whole = good_shard(tmp_path / "whole.tar", ["a", "b", "c"])
    length, keys, lost = _cut_points(whole)[case]
    url = cut(whole, length, tmp_path / "cut.tar")
    got, error = read_raising(url)
    assert [s.key for s in got] == keys
    assert isinstance(error, ShardReadError) and error.reason == "truncated_shard"
    assert error.url == url and url in str(error) and "re-upload" in str(error)
    assert error.key == lost
    if lost is not None:
        assert f"sample {lost!r} was cut and is lost" in str(error)


@pytest.mark.parametrize("case", CUTS)
def test_truncated_tar_skips_the_rest_of_the_shard_and_counts_it(tmp_path, case):
    whole = good_shard(tmp_path / "whole.tar", ["a", "b", "c"])
    after = good_shard(tmp_path / "z-after.tar", ["d", "e"], first_index=3)
    length, keys, lost = _cut_points(whole)[case]
    url = cut(whole, length, tmp_path / "cut.tar")
    samples, report = read_skipping([url, after])
    assert [s.key for s in samples] == [*keys, "d", "e"]
    assert_accounted(samples, report, skipped={"truncated_shard": 1} if lost else {}, damaged=1)
    assert report.read == len(keys) + 2 + (lost is not None)
    [event] = report.events
    assert (event.reason, event.url, event.key, event.shard) == ("truncated_shard", url, lost, True)
    assert report.by_shard() == {url: int(lost is not None)}


def test_truncated_gzip_shard_is_reported(tmp_path):
    import gzip

    whole = good_shard(tmp_path / "whole.tar", ["a", "b", "c"])
    with open(whole, "rb") as f:
        packed = gzip.compress(f.read())
    url = tmp_path / "cut.tar.gz"
    url.write_bytes(packed[: len(packed) * 2 // 3])
    got, error = read_raising(str(url))
    assert isinstance(error, ShardReadError) and error.reason in ("truncated_shard", "corrupt_shard")
    samples, report = read_skipping(str(url))
    assert [s.key for s in samples] == [s.key for s in got]
    assert report.balanced and report.damaged_shards == 1


def test_garbled_header_mid_shard_is_corrupt_not_the_end(tmp_path):
    whole = good_shard(tmp_path / "whole.tar", ["a", "b", "c"])
    header = member_offsets(whole)["b.edit_mel.npy"][0]
    data = bytearray(pathlib.Path(whole).read_bytes())
    data[header: header + 100] = b"\x7f" * 100  # name field garbage, checksum now wrong
    url = tmp_path / "garbled.tar"
    url.write_bytes(bytes(data))
    got, error = read_raising(str(url))
    assert [s.key for s in got] == ["a"]
    assert error.reason == "corrupt_shard" and "damaged" in str(error)
    samples, report = read_skipping(str(url))
    assert [s.key for s in samples] == ["a"]
    assert_accounted(samples, report, skipped={}, damaged=1)


# --- shards that cannot be read at all ------------------------------------------------------------

def _unreadable(tmp_path, case: str) -> tuple[str, str]:
    """A shard URL for ``case`` and the reason it must be reported with."""
    if case == "empty_file":
        (tmp_path / "empty.tar").write_bytes(b"")
        return str(tmp_path / "empty.tar"), "empty_shard"
    if case == "tar_without_members":
        return write_tar(tmp_path / "nothing.tar", []), "empty_shard"
    if case == "tar_without_sample_members":
        return write_tar(tmp_path / "readme.tar", [("README", b"hello"), ("notes/LICENSE", b"x")]), "empty_shard"
    if case == "text_file":
        (tmp_path / "text.tar").write_bytes(b"this is not a tar file\n" * 100)
        return str(tmp_path / "text.tar"), "not_a_tar"
    if case == "short_file":
        (tmp_path / "short.tar").write_bytes(b"\x00\x01" * 50)
        return str(tmp_path / "short.tar"), "not_a_tar"
    if case == "failing_command":
        return f"pipe:cat {tmp_path / 'gone.tar'}", "unreadable_shard"
    raise ValueError(case)


UNREADABLE = ["empty_file", "tar_without_members", "tar_without_sample_members", "text_file", "short_file",
              "failing_command"]


@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_shard_raises_with_its_reason(tmp_path, case):
    url, reason = _unreadable(tmp_path, case)
    got, error = read_raising(url)
    assert got == []
    assert isinstance(error, ShardReadError)
    assert (error.reason, error.url, error.key) == (reason, url, None)
    assert url in str(error) and ";" in str(error)  # the message ends with what to do


@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_shard_is_skipped_and_counted(tmp_path, case):
    url, reason = _unreadable(tmp_path, case)
    good = good_shard(tmp_path / "good.tar", ["a", "b"])
    samples, report = read_skipping([url, good])
    assert [s.key for s in samples] == ["a", "b"]
    assert_accounted(samples, report, skipped={}, damaged=1)
    assert report.damaged_by_reason() == {reason: 1}
    assert report.events[0].url == url and report.events[0].samples == 0


def test_missing_shard_fails_construction_under_raise_and_is_counted_under_skip(tmp_path):
    good = good_shard(tmp_path / "good.tar", ["a"])
    missing = str(tmp_path / "missing.tar")
    with pytest.raises(ValueError, match="missing.tar"):
        Pipe.from_shards([good, missing])
    samples, report = read_skipping([missing, good])
    assert [s.key for s in samples] == ["a"]
    assert_accounted(samples, report, skipped={}, damaged=1)
    assert report.damaged_by_reason() == {"missing_shard": 1}
    with pytest.raises(ValueError, match="exist"):  # skipping cannot help when there is no shard at all
        Pipe.from_shards(missing, on_error="skip")


def test_shard_deleted_after_construction_is_a_clear_error(tmp_path):
    shard = good_shard(tmp_path / "soon-gone.tar", ["a"])
    pipe = Pipe.from_shards(shard)
    os.remove(shard)
    with pytest.raises(ShardReadError, match="does not exist") as info:
        list(pipe)
    assert info.value.reason == "missing_shard"


# --- grouping problems ----------------------------------------------------------------------------

def _grouping_entries(case: str) -> tuple[list[tuple[str, bytes]], list[str], dict[str, int], str]:
    """Entries of a shard for ``case``, the keys to yield under skip, skipped reasons, first error."""
    a, b, c = members(0), members(1), members(2)
    if case == "missing_member":
        return tar_entries([("a", a), ("bad", members(1, pointers__npy=None)), ("c", c)]), ["a", "c"], \
            {"missing_member": 1}, "missing_member"
    if case == "not_adjacent":
        split = [("bad.edit_mel.npy", b["edit_mel.npy"]), ("bad.pointers.npy", b["pointers.npy"])]
        entries = [*tar_entries([("a", a)]), *split, *tar_entries([("c", c)]),
                   ("bad.raw_mel.npy", b["raw_mel.npy"])]
        return entries, ["a", "c"], {"missing_member": 1, "members_not_adjacent": 1}, "missing_member"
    if case == "duplicate_key":
        return tar_entries([("a", a), ("bad", b), ("c", c), ("bad", members(3))]), ["a", "bad", "c"], \
            {"duplicate_key": 1}, "duplicate_key"
    if case == "duplicate_member":
        entries = tar_entries([("a", a), ("bad", b)])
        entries.insert(len(entries) - 1, ("bad.pointers.npy", b["pointers.npy"]))
        return entries + tar_entries([("c", c)]), ["a", "c"], {"duplicate_member": 1}, "duplicate_member"
    raise ValueError(case)


GROUPING = ["missing_member", "not_adjacent", "duplicate_key", "duplicate_member"]


@pytest.mark.parametrize("case", GROUPING)
def test_grouping_problem_raises_naming_shard_key_and_member(tmp_path, case):
    entries, _, _, reason = _grouping_entries(case)
    url = write_tar(tmp_path / "s.tar", entries)
    got, error = read_raising(url)
    assert isinstance(error, SampleError) and error.reason == reason
    assert (error.key, error.url) == ("bad", url)
    assert error.member is not None and error.member in str(error)
    assert "'bad'" in str(error) and url in str(error)
    assert all(s.key != "bad" or case == "duplicate_key" for s in got)


@pytest.mark.parametrize("case", GROUPING)
def test_grouping_problem_is_skipped_and_counted(tmp_path, case):
    entries, keys, skipped, _ = _grouping_entries(case)
    url = write_tar(tmp_path / "s.tar", entries)
    samples, report = read_skipping(url)
    assert [s.key for s in samples] == keys
    assert_accounted(samples, report, skipped=skipped)
    assert report.skipped_keys == ["bad"] * sum(skipped.values())
    assert report.by_shard() == {url: sum(skipped.values())}


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_unknown_extra_members_and_non_sample_files_are_ignored(tmp_path, on_error):
    extra = members(0, wav=b"RIFF....", **{"txt": b"a transcript"})
    entries = [("README", b"about this shard"), *tar_entries([("a", extra), ("b", members(1))])]
    url = write_tar(tmp_path / "s.tar", entries)
    pipe = Pipe.from_shards(url, on_error=on_error)
    samples = list(pipe)
    assert [s.key for s in samples] == ["a", "b"]
    assert samples[0].meta == {"index": 0}
    report = pipe.skip_report()
    assert (report.read, report.yielded, report.skipped) == (2, 2, 0)


# --- bad members and bad values -------------------------------------------------------------------

def _bad_members(case: str) -> tuple[dict[str, bytes], str, str]:
    """Members of a bad sample for ``case``, its reason and the member at fault."""
    good = arrays(1)
    raw, edit, pointers = good["raw_mel.npy"], good["edit_mel.npy"], good["pointers.npy"]
    nan_raw = raw.copy()
    nan_raw[1, 2] = np.nan
    inf_edit = edit.copy()
    inf_edit[0, 0] = np.inf
    table = {
        "npy_garbage": ({"raw_mel__npy": b"definitely not numpy"}, "bad_npy", "raw_mel.npy"),
        "npy_cut_short": ({"edit_mel__npy": npy(edit)[:-7]}, "bad_npy", "edit_mel.npy"),
        "npy_pickled_objects": ({"pointers__npy": _pickled_npy()}, "bad_npy", "pointers.npy"),
        "float_pointers": ({"pointers__npy": pointers.astype(np.float32)}, "bad_dtype", "pointers.npy"),
        "bool_pointers": ({"pointers__npy": pointers > 1}, "bad_dtype", "pointers.npy"),
        "integer_mels": ({"raw_mel__npy": raw.astype(np.int16)}, "bad_dtype", "raw_mel.npy"),
        "complex_mels": ({"edit_mel__npy": edit.astype(np.complex64)}, "bad_dtype", "edit_mel.npy"),
        "mel_rank_3": ({"raw_mel__npy": raw[None]}, "bad_shape", "raw_mel.npy"),
        "mel_rank_1": ({"edit_mel__npy": edit[0]}, "bad_shape", "edit_mel.npy"),
        "pointers_rank_2": ({"pointers__npy": pointers[None]}, "bad_shape", "pointers.npy"),
        "n_mels_differ": ({"edit_mel__npy": edit[:3]}, "bad_shape", "edit_mel.npy"),
        "too_few_pointers": ({"pointers__npy": pointers[:4]}, "length_mismatch", "pointers.npy"),
        "too_many_pointers": ({"pointers__npy": np.append(pointers, 0)}, "length_mismatch", "pointers.npy"),
        "negative_pointer": ({"pointers__npy": np.array([5, 0, -1, 2, 1])}, "pointer_out_of_range", "pointers.npy"),
        "pointer_equal_to_t_raw": ({"pointers__npy": np.array([5, 0, RAW, 2, 1])}, "pointer_out_of_range",
                                   "pointers.npy"),
        "huge_unsigned_pointer": ({"pointers__npy": np.array([2**64 - 1, 0, 1, 2, 3], dtype=np.uint64)},
                                  "pointer_out_of_range", "pointers.npy"),
        "nan_in_raw": ({"raw_mel__npy": nan_raw}, "not_finite", "raw_mel.npy"),
        "inf_in_edit": ({"edit_mel__npy": inf_edit}, "not_finite", "edit_mel.npy"),
        "zero_length_raw": ({"raw_mel__npy": raw[:, :0]}, "empty", "raw_mel.npy"),
        "zero_length_edit": ({"edit_mel__npy": edit[:, :0], "pointers__npy": pointers[:0]}, "empty", "edit_mel.npy"),
        "meta_not_json": ({"meta__json": b"{'single': 'quotes'}"}, "bad_meta", "meta.json"),
        "meta_not_utf8": ({"meta__json": b"\xff\xfe\x00{"}, "bad_meta", "meta.json"),
        "meta_not_an_object": ({"meta__json": b"[1, 2, 3]"}, "bad_meta", "meta.json"),
    }
    overrides, reason, member = table[case]
    return members(1, **overrides), reason, member


def _pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


BAD_MEMBERS = ["npy_garbage", "npy_cut_short", "npy_pickled_objects", "float_pointers", "bool_pointers",
               "integer_mels", "complex_mels", "mel_rank_3", "mel_rank_1", "pointers_rank_2", "n_mels_differ",
               "too_few_pointers", "too_many_pointers", "negative_pointer", "pointer_equal_to_t_raw",
               "huge_unsigned_pointer", "nan_in_raw", "inf_in_edit", "zero_length_raw", "zero_length_edit",
               "meta_not_json", "meta_not_utf8", "meta_not_an_object"]


def _shard_with_bad_sample(tmp_path, case: str) -> tuple[str, str, str]:
    bad, reason, member = _bad_members(case)
    url = write_tar(tmp_path / "s.tar", tar_entries([("a", members(0)), ("bad", bad), ("c", members(2))]))
    return url, reason, member


@pytest.mark.parametrize("case", BAD_MEMBERS)
def test_bad_sample_raises_naming_shard_key_member_and_fix(tmp_path, case):
    url, reason, member = _shard_with_bad_sample(tmp_path, case)
    got, error = read_raising(url)
    assert [s.key for s in got] == ["a"]
    assert isinstance(error, SampleError)
    assert (error.reason, error.key, error.url, error.member) == (reason, "bad", url, member)
    message = str(error)
    assert url in message and "'bad'" in message and member in message
    assert ";" in message  # the part after it says what would fix it


@pytest.mark.parametrize("case", BAD_MEMBERS)
def test_bad_sample_is_skipped_and_counted(tmp_path, case):
    url, reason, member = _shard_with_bad_sample(tmp_path, case)
    samples, report = read_skipping(url)
    assert [s.key for s in samples] == ["a", "c"]
    assert_accounted(samples, report, skipped={reason: 1})
    [event] = report.events
    assert (event.reason, event.url, event.key, event.member, event.samples, event.shard) == (
        reason, url, "bad", member, 1, False)
    assert report.by_shard() == {url: 1}


@pytest.mark.parametrize("case", ["npy_garbage", "float_pointers", "n_mels_differ", "negative_pointer",
                                  "nan_in_raw", "meta_not_json"])
def test_check_reports_the_same_problem_with_shard_key_and_member(tmp_path, case):
    url, reason, member = _shard_with_bad_sample(tmp_path, case)
    [result] = check_shards(url)
    assert result.samples == 3
    [problem] = result.problems
    assert (problem.reason, problem.url, problem.key, problem.member) == (reason, url, "bad", member)


def test_big_endian_and_float64_arrays_are_read_as_native(tmp_path):
    raw, edit, pointers = arrays(0).values()
    odd = members(0, raw_mel__npy=raw.astype(">f4"), edit_mel__npy=edit.astype(np.float64),
                  pointers__npy=pointers.astype(">i4"))
    url = write_tar(tmp_path / "s.tar", tar_entries([("a", odd)]))
    [sample] = Pipe.from_shards(url)
    assert sample.raw_mel.dtype == sample.edit_mel.dtype == torch.float32 and sample.pointers.dtype == torch.int64
    assert torch.equal(sample.edit_mel, sample.raw_mel[:, sample.pointers])


def test_float64_mels_that_overflow_float16_are_not_finite(tmp_path):
    raw, edit, pointers = arrays(0).values()
    url = write_tar(tmp_path / "s.tar", tar_entries([("a", members(0, raw_mel__npy=raw.astype(np.float64) * 1e6))]))
    with pytest.raises(SampleError, match="NaN or Inf") as info:
        list(Pipe.from_shards(url, mel_dtype="float16"))
    assert info.value.reason == "not_finite"


# --- warnings, errors across processes, many problems at once ------------------------------------

def test_skips_warn_once_per_shard(tmp_path, caplog):
    first = write_tar(tmp_path / "1.tar", tar_entries(
        [("x", members(0, pointers__npy=None)), ("y", members(1, meta__json=b"{")), ("z", members(2))]))
    second = write_tar(tmp_path / "2.tar", tar_entries([("w", members(3, raw_mel__npy=b"junk"))]))
    with caplog.at_level(logging.WARNING, logger="streams.reading.skips"):
        samples, report = read_skipping([first, second])
    warnings = [r for r in caplog.records if r.name == "streams.reading.skips"]
    assert len(warnings) == 2
    assert first in warnings[0].getMessage() and "'x'" in warnings[0].getMessage()
    assert second in warnings[1].getMessage()
    assert [s.key for s in samples] == ["z"]
    assert_accounted(samples, report, skipped={"missing_member": 1, "bad_meta": 1, "bad_npy": 1})


def test_errors_keep_their_fields_through_pickling():
    sample_error = SampleError("msg", reason="bad_npy", key="k", url="u.tar", member="raw_mel.npy")
    shard_error = ShardReadError("msg", reason="truncated_shard", url="u.tar", key="k", member="k.x",
                                 complete_records=4)
    for error in (sample_error, shard_error):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and vars(copy) == vars(error) and str(copy) == "msg"
    assert SampleError("only a message").reason == "bad_sample"  # how DataLoader re-raises it


def test_raise_in_a_dataloader_worker_keeps_the_error_type_and_message(tmp_path):
    url, _, _ = _shard_with_bad_sample(tmp_path, "negative_pointer")
    loader = DataLoader(Pipe.from_shards(url), batch_size=None, num_workers=1)
    with pytest.raises(SampleError, match="pointers\\[2\\] = -1"):
        list(loader)


def _messy_shard_set(tmp_path) -> tuple[list[str], dict[str, int], int, set[str]]:
    """Four shards with bad samples and a truncated tail; reasons skipped, damaged shards, good keys."""
    shards = [
        write_tar(tmp_path / "m0.tar", tar_entries([("g0", members(0)), ("b0", members(1, pointers__npy=None)),
                                                     ("g1", members(2))])),
        good_shard(tmp_path / "m1.tar", ["g2", "g3", "g4"], first_index=3),
        write_tar(tmp_path / "m2.tar", tar_entries([("g5", members(6)),
                                                     ("b1", members(7, pointers__npy=np.array([9, 0, 0, 0, 0])))])),
    ]
    whole = good_shard(tmp_path / "whole.tar", ["g6", "g7", "b2"], first_index=8)
    shards.append(cut(whole, member_offsets(whole)["b2.meta.json"][1] + 2, tmp_path / "m3.tar"))
    skipped = {"missing_member": 1, "pointer_out_of_range": 1, "truncated_shard": 1}
    return shards, skipped, 1, {f"g{i}" for i in range(8)}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_accounting_reaches_the_main_process_from_dataloader_workers(tmp_path, num_workers):
    shards, skipped, damaged, good = _messy_shard_set(tmp_path)
    pipe = Pipe.from_shards(shards, on_error="skip")
    loader = DataLoader(pipe, batch_size=None, num_workers=num_workers, persistent_workers=num_workers > 0)
    for epoch in range(2):
        pipe.set_epoch(epoch)
        keys = [sample.key for sample in loader]
        assert sorted(keys) == sorted(good)
    report = pipe.skip_report()
    assert report.passes == report.finished_passes == 2 * max(num_workers, 1)
    assert report.read == report.yielded + report.skipped
    assert report.yielded == 2 * len(good)
    assert report.by_reason() == {reason: 2 * n for reason, n in skipped.items()}
    assert report.damaged_shards == 2 * damaged
    assert sorted(report.skipped_keys) == sorted(["b0", "b1", "b2"] * 2)


def test_accounting_works_with_spawned_workers(tmp_path):
    shards, skipped, _, good = _messy_shard_set(tmp_path)
    pipe = Pipe.from_shards(shards, on_error="skip")
    loader = DataLoader(pipe, batch_size=None, num_workers=2, multiprocessing_context="spawn")
    assert sorted(s.key for s in loader) == sorted(good)
    report = pipe.skip_report()
    assert report.balanced and report.yielded == len(good) and report.by_reason() == skipped


def test_live_report_in_process_and_ledger_cleanup(tmp_path):
    shards, _, _, _ = _messy_shard_set(tmp_path)
    pipe = Pipe.from_shards(shards, on_error="skip", shuffle_shards=False)
    stream = iter(pipe)
    next(stream), next(stream)  # g0, then g1 after skipping b0
    report = pipe.skip_report()
    assert (report.read, report.yielded, report.skipped, report.finished_passes) == (3, 2, 1, 0)
    assert "unfinished" in report.lines()[0]
    ledger = SkipLedger()
    directory = ledger.directory
    assert os.path.isdir(directory)
    del ledger
    assert not os.path.exists(directory)
    assert pickle.loads(pickle.dumps(pipe)).skip_report().read == 0  # another process's view: workers' files only


@pytest.mark.parametrize("same_pipe", [False, True])
def test_resumed_pass_keeps_counting_and_replaces_the_pass_it_continues(tmp_path, same_pipe):
    shards, skipped, _, good = _messy_shard_set(tmp_path)
    pipe = Pipe.from_shards(shards, on_error="skip", shuffle_shards=False)
    stream = iter(pipe)
    first = [next(stream).key for _ in range(3)]  # b0 was skipped on the way
    state = pipe.state_dict()
    next(stream)  # the interrupted pass went on a little before the checkpoint was restored
    resumed = pipe if same_pipe else Pipe.from_shards(shards, on_error="skip", shuffle_shards=False)
    resumed.load_state_dict(state)
    rest = [s.key for s in resumed]
    assert sorted(first + rest) == sorted(good)
    report = resumed.skip_report()
    assert report.read == report.yielded + report.skipped
    assert report.yielded == len(good) and report.by_reason() == skipped
    assert report.passes == 1
    # the same ledger still has the events before the save; a fresh one only those after it
    assert report.skipped_keys == (["b0", "b1", "b2"] if same_pipe else ["b1", "b2"])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stateful_dataloader_resume_counts_each_sample_once(tmp_path, num_workers):
    from torchdata.stateful_dataloader import StatefulDataLoader

    shards, skipped, damaged, good = _messy_shard_set(tmp_path)
    pipe = Pipe.from_shards(shards, on_error="skip")
    loader = StatefulDataLoader(pipe, batch_size=None, num_workers=num_workers)
    stream = iter(loader)
    first = [next(stream).key for _ in range(4)]
    state = loader.state_dict()
    del stream
    loader = StatefulDataLoader(pipe, batch_size=None, num_workers=num_workers)
    loader.load_state_dict(state)
    rest = [s.key for s in loader]
    assert sorted(first + rest) == sorted(good)
    report = pipe.skip_report()
    assert report.balanced and report.yielded == len(good)
    assert report.by_reason() == skipped and report.damaged_shards == damaged


def test_replay_raises_even_when_skipping(tmp_path):
    shard = good_shard(tmp_path / "s.tar", ["a", "b", "c", "d"])
    pipe = Pipe.from_shards(shard, on_error="skip", shuffle_shards=False).shuffle(3)
    stream = iter(pipe)
    next(stream)
    state = pipe.state_dict()
    # the shard changes under the saved state: every sample now has a bad pointer
    write_tar(shard, tar_entries([(k, members(i, pointers__npy=np.full(EDIT, 99))) for i, k in enumerate("abcd")]))
    resumed = Pipe.from_shards(shard, on_error="skip", shuffle_shards=False).shuffle(3)
    resumed.load_state_dict(state)
    with pytest.raises(SampleError, match="shards changed") as info:
        next(iter(resumed))
    assert info.value.reason == "pointer_out_of_range"


def test_pairs_count_as_two_in_the_run_summary(tmp_path):
    shards, skipped, _, good = _messy_shard_set(tmp_path)
    pipe = Pipe.from_shards(shards, on_error="skip").pair(1.0, buffer_size=4)
    summary = run_pipeline(pipe, epochs=2, num_workers=2, progress=False)
    assert summary.items < summary.samples == 2 * len(good)
    assert summary.skips.yielded == summary.samples
    assert summary.skips.read == summary.skips.yielded + summary.skips.skipped
    assert summary.skips.by_reason() == {reason: 2 * n for reason, n in skipped.items()}
    text = "\n".join(summary.lines())
    assert "skipped 6 (missing_member 2, pointer_out_of_range 2, truncated_shard 2)" in text
    assert f"samples {2 * len(good)} (in {summary.items} items after pairing)" in text


def test_source_samples_counts_nested_pairs():
    inner = ("pair", ("shard", 0, 1), ("shard", 0, 2))
    assert source_samples(("pair", inner, ["memory", 3])) == 3
    assert source_samples(None) == 1


# --- the command line -----------------------------------------------------------------------------

def test_check_reports_every_problem_and_exits_1(tmp_path, capsys):
    shards, _, _, _ = _messy_shard_set(tmp_path)
    (tmp_path / "m4.tar").write_bytes(b"")
    assert main(["check", "--no-progress", *shards, str(tmp_path / "m4.tar")]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == ("check: 5 shard(s), 11 sample(s) read, 4 problem(s) (empty_shard 1, missing_member 1, "
                         "pointer_out_of_range 1, truncated_shard 1)")
    for reason, key, shard in [("missing_member", "b0", "m0.tar"), ("pointer_out_of_range", "b1", "m2.tar"),
                               ("truncated_shard", "b2", "m3.tar"), ("empty_shard", None, "m4.tar")]:
        [line] = [line for line in lines if line.startswith(f"{reason}: ")]
        assert shard in line and (key is None or f"'{key}'" in line)
    assert "member pointers.npy" in out


def _config(tmp_path, shards: list[str], on_error: str) -> str:
    path = tmp_path / f"{on_error}.json"
    path.write_text(json.dumps({"source": {"urls": shards, "on_error": on_error, "shuffle_shards": False},
                                "batching": {"batch_size": 2}}))
    return str(path)


def test_run_summary_shows_the_skips(tmp_path, capsys):
    shards, _, _, good = _messy_shard_set(tmp_path)
    assert main(["run", _config(tmp_path, shards, "skip"), "--workers", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"source: read {len(good) + 3} samples, yielded {len(good)}, skipped 3 " in out
    assert "damaged shards 1 (truncated_shard 1)" in out
    assert "skipped missing_member:" in out and "sample 'b0'" in out


@pytest.mark.parametrize("workers", ["0", "2"])
def test_run_stops_with_a_clear_message_under_raise(tmp_path, capsys, workers):
    shards, _, _, _ = _messy_shard_set(tmp_path)
    assert main(["run", _config(tmp_path, shards[:1], "raise"), "--workers", workers, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("run: sample 'b0' in shard ") and "missing member(s) pointers.npy" in err
    assert "Traceback" not in err


def test_iter_records_marks_bad_records_without_stopping(tmp_path):
    entries, _, _, _ = _grouping_entries("duplicate_key")
    url = write_tar(tmp_path / "s.tar", entries)
    records = list(iter_records(url))
    assert [(r.key, r.index, r.problem is None) for r in records] == [
        ("a", 0, True), ("bad", 1, True), ("c", 2, True), ("bad", 3, False)]
    assert records[3].problem.reason == "duplicate_key"


def test_a_reader_that_raised_stays_failed_instead_of_skipping_the_rest_of_its_shard(tmp_path):
    bad = members(1, pointers__npy=np.array([5, 0, 2, 2, 99]))
    shard = write_tar(tmp_path / "s.tar", tar_entries([("a", members(0)), ("b", bad), ("c", members(2))]))
    iterator = iter(Pipe.from_shards(shard))
    assert next(iterator).key == "a"
    for _ in range(2):  # asking again must not move on to "c" as if nothing happened
        with pytest.raises(SampleError, match="'b'"):
            next(iterator)


def test_run_counts_augmentations_made_before_pairing(demo_urls):
    from pipelines import load_config

    config = load_config({"source": {"urls": demo_urls}, "augmentation": {
        "enabled": True, "crop": {"enabled": True, "probability": 1.0, "min_len": 100, "max_len": 200},
        "concatenation": {"enabled": True, "probability": 1.0, "buffer_size": 4}}})
    summary = run_pipeline(config, progress=False)
    assert summary.fired["crop"] == summary.samples == 24  # every sample was cropped, paired or not
    assert summary.fired["pair"] == 12
