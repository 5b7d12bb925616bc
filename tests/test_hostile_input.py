"""Hostile input, round two: damage ``tarfile`` takes for an end, links, dot keys, decode errors of
any type, oversize members, pack atomicity, shell commands from configs, stalls.

Each test builds its input the way it happens in the wild (a zeroed block, a zero-filled tail, GNU
tar over hard-linked files, a 5,000-digit integer, a wrapping ``.npy`` shape, a sparse member,
a signal during pack, a ``pipe:`` that would create a file) and checks that nothing is lost
silently: an error naming shard, key and member, or a counted skip with ``read = yielded + skipped``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import warnings

import numpy as np
import pytest

from pipelines.cli import main
from streams import Pipe, SampleError, ShardReadError
from streams.reading.decode import decode_sample
from streams.reading.tar_records import ReadLimits, Record, iter_records
from streams.tools.shard_check import check_shards

from .conftest import REPO
from .test_bad_input import (
    assert_accounted,
    good_shard,
    member_offsets,
    members,
    read_raising,
    read_skipping,
    tar_entries,
    write_tar,
)

TEN = [f"k{i}" for i in range(10)]


def zero(path: str, start: int, stop: int | None = None) -> str:
    """Overwrite bytes ``[start, stop)`` of the file with zeros (to its end when ``stop`` is None)."""
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        f.seek(start)
        f.write(b"\0" * ((stop if stop is not None else size) - start))
    return path


def write_index(path: str, counts: dict[str, int]) -> None:
    with open(os.path.join(os.path.dirname(path), "index.json"), "w") as f:
        json.dump({"shards": {name: {"samples": n} for name, n in counts.items()}}, f)


# --- 1. zero blocks ---------------------------------------------------------------------------------

def test_a_zeroed_block_mid_shard_is_damage_not_the_end(tmp_path, capsys):
    url = good_shard(tmp_path / "s.tar", TEN)
    header = member_offsets(url)["k4.edit_mel.npy"][0]
    zero(url, header, header + 512)  # one 512-byte block: the header of sample k4's first member
    got, error = read_raising(url)
    assert [s.key for s in got] == TEN[:4]
    assert isinstance(error, ShardReadError) and error.reason == "corrupt_shard"
    assert f"a block of zeros at byte {header} is followed by more data" in str(error) and url in str(error)
    samples, report = read_skipping(url)
    assert [s.key for s in samples] == TEN[:4]
    assert_accounted(samples, report, skipped={}, damaged=1)
    assert main(["check", url, "--no-progress"]) == 1
    assert "corrupt_shard" in capsys.readouterr().out


def test_a_lone_zero_block_at_the_end_is_a_cut_shard(tmp_path):
    url = good_shard(tmp_path / "s.tar", TEN)
    with tarfile.open(url) as tar:
        end = max(info.offset_data + -(-info.size // 512) * 512 for info in tar.getmembers())
    with open(url, "r+b") as f:
        f.truncate(end + 512)  # the first block of the end-of-archive marker, then nothing
    got, error = read_raising(url)
    assert [s.key for s in got] == TEN
    assert error.reason == "truncated_shard" and "lone zero block" in str(error)


def test_a_zero_filled_tail_is_damage_when_the_index_counts_more(tmp_path, capsys):
    url = good_shard(tmp_path / "s.tar", TEN)
    write_index(url, {"s.tar": 10})
    zero(url, member_offsets(url)["k4.edit_mel.npy"][0])  # a pre-allocated download cut short at sample k4
    got, error = read_raising(url)
    assert [s.key for s in got] == TEN[:4]
    assert error.reason == "truncated_shard" and "ends cleanly after 4 sample(s)" in str(error)
    assert "says 10" in str(error) and url in str(error)
    samples, report = read_skipping(url)
    assert_accounted(samples, report, skipped={}, damaged=1)
    assert main(["check", url, "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "truncated_shard" in out and "4 sample(s) read, 1 problem(s)" in out


# --- 2. links -----------------------------------------------------------------------------------------

def _sample_folder(folder, keys: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for index, key in enumerate(keys):
        for name, data in members(index).items():
            (folder / f"{key}.{name}").write_bytes(data)


def _gnu_tar(folder, out: str, *flags: str) -> str:
    names = sorted(os.listdir(folder))
    subprocess.run(["tar", *flags, "-cf", out, "-C", str(folder), *names], check=True)
    return out


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_gnu_tar_hard_links_resolve_to_the_earlier_member(tmp_path, suffix):
    folder = tmp_path / "samples"
    _sample_folder(folder, ["a", "c"])
    for name in ("edit_mel.npy", "meta.json", "pointers.npy", "raw_mel.npy"):  # sample b: all four are links
        os.link(folder / f"a.{name}", folder / f"b.{name}")
    os.unlink(folder / "c.meta.json")
    os.link(folder / "a.meta.json", folder / "c.meta.json")  # sample c: partly linked
    url = _gnu_tar(folder, str(tmp_path / f"s{suffix}"), "-z" if suffix == ".tar.gz" else "--format=gnu")
    with tarfile.open(url) as tar:
        assert sum(info.islnk() for info in tar.getmembers()) == 5  # GNU tar stored them as hard links
    samples = list(Pipe.from_shards(url, shuffle_shards=False))
    assert [s.key for s in samples] == ["a", "b", "c"]
    assert samples[1].raw_mel.equal(samples[0].raw_mel) and samples[1].meta == samples[0].meta
    assert samples[2].meta == samples[0].meta and not samples[2].raw_mel.equal(samples[0].raw_mel)
    assert check_shards(url).__next__().problems == []


def test_symlinks_and_dangling_hard_links_are_bad_samples(tmp_path):
    entries = tar_entries([("a", members(0))])
    url = str(tmp_path / "s.tar")
    with tarfile.open(url, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries + tar_entries([("b", members(1, raw_mel__npy=None)), ("c", members(2))]):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            if name == "b.pointers.npy":
                link = tarfile.TarInfo("b.raw_mel.npy")
                link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(link)
        for name, data in tar_entries([("d", members(3, raw_mel__npy=None))]):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        dangling = tarfile.TarInfo("d.raw_mel.npy")
        dangling.type, dangling.linkname = tarfile.LNKTYPE, "elsewhere/x.raw_mel.npy"
        tar.addfile(dangling)
    got, error = read_raising(url)
    assert [s.key for s in got] == ["a"]
    assert isinstance(error, SampleError) and error.reason == "link_member"
    assert (error.key, error.member) == ("b", "raw_mel.npy") and "symbolic link" in str(error)
    samples, report = read_skipping(url)
    assert [s.key for s in samples] == ["a", "c"]
    assert_accounted(samples, report, skipped={"link_member": 2})
    assert any("hard link to elsewhere/x.raw_mel.npy" in event.message for event in report.events)


# --- 3. dot keys ------------------------------------------------------------------------------------

def test_keys_beginning_with_a_dot_are_read_checked_and_packed(tmp_path, capsys):
    url = write_tar(tmp_path / "s.tar", tar_entries([(".hidden", members(0)), ("dir/.h2", members(1)),
                                                     ("c", members(2))]))
    assert [s.key for s in Pipe.from_shards(url, shuffle_shards=False)] == [".hidden", "dir/.h2", "c"]
    assert [r.samples for r in check_shards(url)] == [3]
    folder = tmp_path / "src"
    _sample_folder(folder, [".hidden", "b"])
    assert main(["pack", str(folder), str(tmp_path / "out" / "p-%06d.tar")]) == 0
    assert "2 samples" in capsys.readouterr().out
    assert [s.key for s in Pipe.from_shards(str(tmp_path / "out" / "p-000000.tar"))] == [".hidden", "b"]


# --- 4. decode errors of any type -------------------------------------------------------------------

def _npy_header(shape: tuple) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


HOSTILE = {
    "huge_int": ("meta.json", b'{"n": ' + b"7" * 5000 + b"}", "bad_meta", "Exceeds the limit"),
    "wrapping_shape": ("raw_mel.npy", _npy_header((2**32, 2**32)), "bad_npy", "(4294967296, 4294967296)"),
    "negative_shape": ("raw_mel.npy", _npy_header((-2, -2)) + b"\0" * 16, "bad_npy", "negative size"),
}


def _hostile_shard(tmp_path, case: str) -> str:
    member, data, _, _ = HOSTILE[case]
    bad = members(1, **{member.replace(".", "__"): data})
    return write_tar(tmp_path / f"{case}.tar", tar_entries([("a", members(0)), ("bad", bad), ("c", members(2))]))


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_decode_errors_meet_the_policy(tmp_path, case):
    member, _, reason, text = HOSTILE[case]
    url = _hostile_shard(tmp_path, case)
    got, error = read_raising(url)
    assert [s.key for s in got] == ["a"]
    assert isinstance(error, SampleError) and (error.reason, error.key, error.member) == (reason, "bad", member)
    assert text in str(error) and url in str(error)
    samples, report = read_skipping(url)
    assert [s.key for s in samples] == ["a", "c"]
    assert_accounted(samples, report, skipped={reason: 1})


def test_any_exception_while_decoding_becomes_the_samples_error(monkeypatch):
    from streams.reading import decode

    def explode(sample):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(decode, "check_sample", explode)
    record = Record(key="k", index=0, members=members(0), url="x.tar")
    with pytest.raises(SampleError, match=r"sample 'k' in shard x.tar: decoding failed \(MemoryError") as info:
        decode_sample(record)
    assert (info.value.reason, info.value.key, info.value.url) == ("decode_error", "k", "x.tar")


def test_run_under_raise_names_shard_key_and_member_and_exits_1(tmp_path, capsys):
    url = _hostile_shard(tmp_path, "huge_int")
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"source": {"urls": url}}))
    assert main(["run", str(config), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert url in err and "'bad'" in err and "meta.json" in err


def test_check_over_many_shards_reports_every_problem_of_every_shard(tmp_path, capsys):
    urls = [_hostile_shard(tmp_path, case) for case in sorted(HOSTILE)]
    zeroed = good_shard(tmp_path / "zeroed.tar", [f"z{i}" for i in range(10)])
    header = member_offsets(zeroed)["z4.edit_mel.npy"][0]
    zero(zeroed, header, header + 512)
    urls.append(zeroed)
    urls.append(good_shard(tmp_path / "again.tar", ["c", "d"]))  # every hostile shard holds a, bad and c
    os.mkdir(tmp_path / "folder.tar")
    urls.append(str(tmp_path / "folder.tar"))
    assert main(["check", *urls, "--no-progress"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    for url, case in zip(urls, sorted(HOSTILE)):
        assert any(line.startswith(f"{HOSTILE[case][2]}: ") and url in line for line in lines)
    assert any(line.startswith("corrupt_shard: ") and zeroed in line for line in lines)
    assert any(line.startswith("not_a_tar: ") and "is a folder" in line for line in lines)
    assert sum(line.startswith("duplicate_key_across_shards: ") for line in lines) == 2 * 3 + 1  # a, bad, c; c
    assert f"check: {len(urls)} shard(s)" in lines[-1]


# --- 5. bounded members -----------------------------------------------------------------------------

def test_an_oversize_member_is_a_bad_sample_and_is_not_read(tmp_path):
    big = members(1, meta__json=json.dumps({"pad": "x" * 5000}).encode())
    url = write_tar(tmp_path / "s.tar", tar_entries([("a", members(0)), ("big", big), ("c", members(2))]))
    limits = ReadLimits(max_meta_bytes=4096)
    records = list(iter_records(url, limits=limits))
    assert records[1].members["meta.json"] is None and records[1].problem.reason == "member_too_large"
    assert "5,0" in str(records[1].problem) and "4,096-byte limit" in str(records[1].problem)
    samples, report = read_skipping(url, limits=limits)
    assert [s.key for s in samples] == ["a", "c"]
    assert_accounted(samples, report, skipped={"member_too_large": 1})
    assert [s.key for s in Pipe.from_shards(url, shuffle_shards=False)] == ["a", "big", "c"]  # default limits


@pytest.mark.parametrize("field, value", [("max_array_bytes", 0), ("max_meta_bytes", 1.5), ("stall_timeout", 0)])
def test_read_limits_are_checked(field, value):
    with pytest.raises(ValueError, match=rf"{field} must be"):
        ReadLimits(**{field: value})


_PEAK = """
import json, resource, sys
from streams.tools.shard_check import check_shards
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = next(check_shards(sys.argv[1]))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([[p.reason for p in result.problems], (after - before) // 1024]))
"""


def test_a_sparse_member_is_refused_without_expanding_it(tmp_path):
    folder = tmp_path / "samples"
    _sample_folder(folder, ["a", "b"])
    with open(folder / "b.meta.json", "wb") as f:  # 512 MiB of holes: a few KB in a sparse tar
        f.truncate(512 * 2**20)
    url = _gnu_tar(folder, str(tmp_path / "s.tar"), "--sparse")
    assert os.path.getsize(url) < 2**20
    out = subprocess.run([sys.executable, "-c", _PEAK, url], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": REPO}, cwd=REPO).stdout
    reasons, grown_mb = json.loads(out)
    assert reasons == ["member_too_large"]
    assert grown_mb < 64, f"peak memory grew by {grown_mb} MB while checking a {os.path.getsize(url)}-byte shard"


def test_a_folder_given_as_a_shard_is_not_called_missing(tmp_path):
    os.mkdir(tmp_path / "shards")
    good_shard(tmp_path / "shards" / "s.tar", ["a"])
    with pytest.raises(ValueError, match=r"is a folder, not a shard file"):
        Pipe.from_shards(str(tmp_path / "shards"))
    result = next(check_shards(str(tmp_path / "shards")))
    assert result.problems[0].reason == "not_a_tar" and "is a folder" in result.problems[0].message


# --- 6. pack writes a whole set or nothing ----------------------------------------------------------

def _shard_files(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tar")) if os.path.isdir(folder) else []


def test_pack_reports_a_folder_where_a_file_should_be_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    _sample_folder(src, ["a", "b", "c"])
    os.remove(src / "b.raw_mel.npy")
    os.mkdir(src / "b.raw_mel.npy")
    out = tmp_path / "out"
    assert main(["pack", str(src), str(out / "p-%06d.tar"), "--max-samples", "1"]) == 1
    assert "IsADirectoryError" in capsys.readouterr().err
    assert _shard_files(out) == []
    assert main(["pack", str(src), str(out / "p-%06d.tar"), "--max-samples", "1", "--skip-bad"]) == 0
    assert "2 samples into 2 shard(s), " in capsys.readouterr().out
    assert [s.key for s in Pipe.from_shards(str(out / "p-{000000..000001}.tar"), shuffle_shards=False)] == ["a", "c"]


def test_pack_reports_a_pt_whose_meta_holds_a_tensor(tmp_path, capsys):
    import torch

    src = tmp_path / "src"
    src.mkdir()
    raw = torch.arange(12, dtype=torch.float32).reshape(2, 6)
    torch.save({"raw_mel": raw, "edit_mel": raw[:, :2], "pointers": torch.tensor([0, 1]),
                "meta": {"speaker": torch.tensor(3)}}, src / "a.pt")
    assert main(["pack", str(src), str(tmp_path / "out" / "p-%06d.tar")]) == 1
    err = capsys.readouterr().err
    assert "bad" in err and "'a'" in err and "JSON" in err
    assert _shard_files(tmp_path / "out") == []


def test_pack_does_not_read_an_oversize_sample_file(tmp_path, capsys):
    src = tmp_path / "src"
    _sample_folder(src, ["a", "b"])
    with open(src / "b.meta.json", "wb") as f:
        f.truncate(64 * 2**20)  # sparse: 64 MiB of holes, over the 4 MiB meta limit
    assert main(["pack", str(src), str(tmp_path / "out" / "p-%06d.tar"), "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "67,108,864 bytes, over the 4,194,304-byte limit" in captured.err and "1 skipped" in captured.out


def test_pack_refuses_an_output_holding_shards_unless_overwrite(tmp_path, capsys):
    src = tmp_path / "src"
    _sample_folder(src, ["a", "b", "c"])
    out = tmp_path / "out"
    assert main(["pack", str(src), str(out / "p-%06d.tar"), "--max-samples", "1"]) == 0
    for key in ("b", "c"):
        for name in os.listdir(src):
            if name.startswith(f"{key}."):
                os.remove(src / name)
    capsys.readouterr()
    assert main(["pack", str(src), str(out / "p-%06d.tar"), "--max-samples", "1"]) == 2
    assert "already holds shards of p-%06d.tar (p-000000.tar, p-000001.tar, p-000002.tar)" in capsys.readouterr().err
    assert _shard_files(out) == ["p-000000.tar", "p-000001.tar", "p-000002.tar"]
    assert main(["pack", str(src), str(out / "p-%06d.tar"), "--max-samples", "1", "--overwrite"]) == 0
    assert _shard_files(out) == ["p-000000.tar"]
    with open(out / "index.json") as f:
        assert list(json.load(f)["shards"]) == ["p-000000.tar"]
    assert main(["pack", str(src), str(out / "q-%06d.tar")]) == 0  # another pattern in the same folder is fine
    with open(out / "index.json") as f:
        assert list(json.load(f)["shards"]) == ["p-000000.tar", "q-000000.tar"]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_pack_interrupted_by_a_signal_leaves_no_shard(tmp_path, signum):
    import signal
    import time

    src = tmp_path / "src"
    src.mkdir()
    big = np.zeros((64, 256), dtype=np.float32)
    data = members(0, raw_mel__npy=big, edit_mel__npy=big[:, :5])
    for index in range(400):
        for name, payload in data.items():
            (src / f"s{index:04d}.{name}").write_bytes(payload)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "pack", str(src), str(out / "p-%06d.tar"),
                                "--max-samples", "1"], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        staging = [d for d in os.listdir(out) if d.startswith(".pack-")] if out.is_dir() else []
        if staging and len(_shard_files(out / staging[0])) >= 2:
            break
        time.sleep(0.005)
    assert process.poll() is None, "pack finished before it could be interrupted; give it more samples"
    process.send_signal(getattr(signal, signum))
    process.wait(timeout=60)
    assert process.returncode != 0
    assert os.listdir(out) == [], f"left behind: {os.listdir(out)}"


# --- 7. no shell command from a config without the opt-in, none while loading ------------------------

def _pipe_config(tmp_path, **source) -> str:
    shard = good_shard(tmp_path / "s.tar", ["a", "b"])
    write_index(shard, {"s.tar": 2})
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"source": {"urls": shard, **source}}))
    return str(config)


def test_a_pipe_in_sample_counts_runs_nothing_while_loading(tmp_path):
    from pipelines import ConfigError, build_pipe, load_config

    marker = tmp_path / "ran"
    counts = f"pipe:touch {marker}; cat {tmp_path / 'index.json'}"
    config = _pipe_config(tmp_path, sample_counts=counts, equal_steps="repeat")
    with pytest.raises(ConfigError, match=r"source.sample_counts: 'pipe:touch .*' runs a shell command") as info:
        load_config(config)
    assert info.value.path == "source.sample_counts" and "allow_pipe" in str(info.value)
    assert not marker.exists()
    trusted = _pipe_config(tmp_path, sample_counts=counts, equal_steps="repeat", allow_pipe=True)
    loaded = load_config(trusted)
    assert not marker.exists()  # validating a trusted config does not run it either
    pipe = build_pipe(loaded)  # building the pipe to read is when the command runs
    assert marker.exists() and pipe.source.samples_per_rank(1) == 2


def test_a_pipe_in_urls_needs_the_opt_in(tmp_path):
    from pipelines import ConfigError, load_config

    shard = good_shard(tmp_path / "s.tar", ["a", "b"])
    config = {"source": {"urls": [shard, f"pipe:cat {shard}"]}}
    with pytest.raises(ConfigError, match=r"source.urls: 'pipe:cat .*' runs a shell command"):
        load_config(config)
    with pytest.raises(ConfigError, match=r"source.urls: 'pipe:touch x' runs a shell command"):
        load_config({"source": {"urls": "{pipe:touch x,a.tar}"}})  # hidden in a brace pattern
    assert load_config({"source": {"urls": f"pipe:cat {shard}", "allow_pipe": True}}).source.allow_pipe


@pytest.mark.parametrize("field, value, path", [("max_array_mb", 0, "source.max_array_mb"),
                                                ("max_meta_mb", -1, "source.max_meta_mb"),
                                                ("stall_timeout", 0, "source.stall_timeout")])
def test_read_limits_in_a_config_are_checked_with_their_field(tmp_path, field, value, path):
    from pipelines import ConfigError, load_config

    shard = good_shard(tmp_path / "s.tar", ["a"])
    with pytest.raises(ConfigError) as info:
        load_config({"source": {"urls": shard, field: value}})
    assert info.value.path == path and "must be" in str(info.value) and "unknown key" not in str(info.value)


def test_member_limits_from_a_config_reach_the_reader(tmp_path):
    from pipelines import build_pipe, load_config

    big = members(1, meta__json=json.dumps({"pad": "x" * 3000}).encode())
    url = write_tar(tmp_path / "s.tar", tar_entries([("a", members(0)), ("big", big)]))
    pipe = build_pipe(load_config({"source": {"urls": url, "on_error": "skip", "max_meta_mb": 0.002}}))
    assert [s.key for s in pipe] == ["a"] and pipe.skip_report().by_reason() == {"member_too_large": 1}


# --- 9. stalls ----------------------------------------------------------------------------------------

def test_a_stalled_pipe_read_fails_naming_the_shard(tmp_path):
    import time

    shard = good_shard(tmp_path / "s.tar", TEN)
    cut_at = member_offsets(shard)["k4.edit_mel.npy"][0]
    url = f"pipe:head -c {cut_at} {shard}; exec sleep 30"
    start = time.monotonic()
    got, error = read_raising_limits(url, ReadLimits(stall_timeout=0.5))
    assert time.monotonic() - start < 20
    assert [s.key for s in got] == TEN[:4]
    assert isinstance(error, ShardReadError) and error.reason == "stalled_shard" and error.url == url
    assert url in str(error) and "no data for 0.5 s" in str(error)
    samples, report = read_skipping(url, limits=ReadLimits(stall_timeout=0.5))
    assert_accounted(samples, report, skipped={}, damaged=1)


def test_a_slow_pipe_within_the_stall_timeout_reads_whole_even_gzipped(tmp_path):
    shard = good_shard(tmp_path / "s.tar", TEN)
    subprocess.run(["gzip", "-k", shard], check=True)
    url = f"pipe:head -c 1 {shard}.gz; sleep 0.3; tail -c +2 {shard}.gz"  # the gzip magic arrives in two parts
    samples = list(Pipe.from_shards(url, shuffle_shards=False, limits=ReadLimits(stall_timeout=10)))
    assert [s.key for s in samples] == TEN


def read_raising_limits(url: str, limits: ReadLimits) -> tuple[list, Exception]:
    pipe = Pipe.from_shards(url, shuffle_shards=False, limits=limits)
    got = []
    with pytest.raises(ShardReadError) as info:
        for sample in pipe:
            got.append(sample)
    return got, info.value


class _Stuck:
    """A stage function that hangs in a DataLoader worker, as a stopped or deadlocked worker does."""

    def __call__(self, sample):
        import time

        time.sleep(60)
        return sample


def test_run_with_a_stall_timeout_fails_when_a_worker_hangs(tmp_path):
    import time

    from pipelines.run import StallError, run_pipeline

    url = good_shard(tmp_path / "s.tar", ["a", "b"])
    pipe = Pipe.from_shards(url).map(_Stuck())
    start = time.monotonic()
    with pytest.raises(StallError, match=r"no item from the DataLoader workers for 2 s \(stall timeout 1 s\)"):
        run_pipeline(pipe, num_workers=1, progress=False, stall_timeout=1)
    assert time.monotonic() - start < 30


def test_run_stall_timeout_reaches_pipe_reads_of_a_config(tmp_path, capsys):
    shard = good_shard(tmp_path / "s.tar", ["a", "b"])
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"source": {"urls": f"pipe:cat {shard}; exec sleep 30", "allow_pipe": True}}))
    assert main(["run", str(config), "--no-progress", "--stall-timeout", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "stalled" in err and f"pipe:cat {shard}" in err


# --- 8. smaller holes -------------------------------------------------------------------------------

def test_sigterm_to_run_removes_the_skip_accounting_folder(tmp_path):
    import signal
    import time

    shard = good_shard(tmp_path / "s.tar", ["a", "b"])
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"source": {"urls": shard, "on_error": "skip"}}))
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "pipelines", "run", str(config), "--epochs", "1000000",
                                "--no-progress"], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO,
                                                                 "TMPDIR": str(temporary)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(name.startswith("streams-skips-") for name in os.listdir(temporary)):
        time.sleep(0.01)
    time.sleep(0.5)  # past load_config's own check, into the epochs
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert [name for name in os.listdir(temporary) if name.startswith("streams-skips-")] == []


def test_one_shard_under_two_spellings_is_listed_twice(tmp_path):
    shard = good_shard(tmp_path / "x.tar", ["a"])
    for twice in ([shard, str(tmp_path / "." / "x.tar")], [shard, f"file:{shard}"]):
        with pytest.raises(ValueError, match=r"listed more than once"):
            Pipe.from_shards(twice)


def test_a_sample_written_twice_in_a_row_keeps_the_first_copy(tmp_path):
    url = write_tar(tmp_path / "s.tar", tar_entries([("a", members(0)), ("b", members(1)), ("b", members(2)),
                                                     ("c", members(3))]))
    samples, report = read_skipping(url)
    assert [s.key for s in samples] == ["a", "b", "c"] and samples[1].meta == {"index": 1}
    assert_accounted(samples, report, skipped={"duplicate_key": 1})
    got, error = read_raising(url)
    assert [s.key for s in got] == ["a", "b"] and error.reason == "duplicate_key"


def test_a_misspelt_pair_by_field_warns(tmp_path):
    from streams.stages.pairing import PairStage

    samples = list(Pipe.from_shards(good_shard(tmp_path / "s.tar", ["a", "b", "c", "d"]), shuffle_shards=False))
    pipe = Pipe.from_samples(samples).then(PairStage(probability=1.0, buffer_size=4, pair_by="indx"))
    with pytest.warns(UserWarning, match=r"pairing by meta field 'indx': neither sample 'a' \(its fields: index\) "
                                         r"nor the 3 other buffered samples have it, so none is paired"):
        assert len(list(pipe)) == 4
    correct = Pipe.from_samples(samples).then(PairStage(probability=1.0, buffer_size=4, pair_by="index"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(correct)) == 4  # every index differs: no pairs, and no warning either


def test_a_pathlib_path_is_a_shard_url(tmp_path):
    import pathlib

    shard = pathlib.Path(good_shard(tmp_path / "s.tar", ["a", "b"]))
    assert [s.key for s in Pipe.from_shards(shard, shuffle_shards=False)] == ["a", "b"]
    assert [s.key for s in Pipe.from_shards([shard], shuffle_shards=False)] == ["a", "b"]
    assert [r.samples for r in check_shards(shard)] == [2]
