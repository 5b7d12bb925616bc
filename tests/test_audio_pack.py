"""Real audio in: mels, source folders, pack-audio (both forms, bad input) and simulate-edits, on audio made here."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import soundfile
import torch

from pipelines.cli import main
from streams import Pipe
from streams.audio.edl import EditList, edit_pointers, edl_to_json, render_edit
from streams.audio.mel import MelSettings, log_mel
from streams.sample import SampleError
from streams.seeding import sample_rng
from streams.tools.audio_pack import pack_audio
from streams.tools.audio_source import audio_sample, find_audio_sources
from streams.tools.edit_simulator import ExportPerturbation, apply_export, draw_edl
from streams.tools.simulate_folder import simulate_edits
from streams.tools.synthetic_audio import synthetic_music

SR = 22050
SETTINGS = MelSettings()


def music(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """The project's synthetic notes (40 ms attacks keep part-hop shifts within the > 0.99 criterion)."""
    return synthetic_music(seconds, seed, sr)


def write_entry(folder, key: str, audio: np.ndarray, edl: dict | str, sr: int = SR, export: np.ndarray | None = None,
                meta: dict | None = None, raw_suffix: str = "wav") -> None:
    os.makedirs(folder, exist_ok=True)
    soundfile.write(os.path.join(folder, f"{key}.raw.{raw_suffix}"), audio, sr)
    with open(os.path.join(folder, f"{key}.edl.json"), "w") as f:
        f.write(edl if isinstance(edl, str) else json.dumps(edl))
    if export is not None:
        soundfile.write(os.path.join(folder, f"{key}.edit.wav"), export, sr, subtype="FLOAT")
    if meta is not None:
        with open(os.path.join(folder, f"{key}.meta.json"), "w") as f:
            json.dump(meta, f)


def read_back(pattern_dir) -> dict:
    urls = sorted(os.path.join(pattern_dir, n) for n in os.listdir(pattern_dir) if n.endswith(".tar"))
    return {s.key: s for s in Pipe.from_shards(urls, shuffle_shards=False, mel_dtype="float16")}


def test_log_mel_frames_floor_and_dtype():
    mel = log_mel(np.zeros(5000, dtype=np.float32), SETTINGS)
    assert mel.shape == (128, 1 + 5000 // 256) and mel.dtype == np.float32
    assert float(mel.max()) == pytest.approx(-100.0)  # the floor: amin 1e-10, reference 1.0
    sine = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR).astype(np.float32)
    assert 32.0 < float(log_mel(sine, SETTINGS).max()) < 34.0  # the documented level of a full-scale 1 kHz sine


@pytest.mark.parametrize("field", ["sample_rate", "n_fft", "hop_length", "n_mels"])
def test_mel_settings_reject_bad_values(field):
    with pytest.raises(ValueError, match=field):
        MelSettings(**{field: 0})
    with pytest.raises(ValueError, match="f_max"):
        MelSettings(f_max=20000.0)


@pytest.mark.parametrize("file_rate", [SR, 44100])
def test_identity_edl_gives_the_raw_mel_and_arange(tmp_path, file_rate):
    audio = music(3.0, seed=1, sr=file_rate)
    write_entry(tmp_path, "id", np.stack([audio, audio], axis=1), {"segments": [[0, len(audio) / file_rate]]},
                sr=file_rate)
    (source,), problems = find_audio_sources(str(tmp_path))
    sample = audio_sample(source, SETTINGS, dtype=torch.float32)
    assert not problems
    torch.testing.assert_close(sample.edit_mel, sample.raw_mel, rtol=0, atol=1e-4)
    assert sample.pointers.tolist() == list(range(sample.raw_mel.shape[1]))
    assert sample.meta["recording"] == "id" and sample.meta["sample_rate"] == SR and sample.meta["n_mels"] == 128
    assert sample.meta["source_sample_rates"]["raw"] == file_rate and "librosa" in sample.meta["versions"]


def _away_from_cuts(edl: EditList, frames: int) -> np.ndarray:
    """Edit frames whose analysis window (n_fft) touches no cut, crossfade or edge of the edit."""
    starts = edl.edit_starts(SR)
    crossfade = edl.sample_plan(SR)[2]
    centres = np.arange(frames) * SETTINGS.hop_length
    reach = SETTINGS.n_fft // 2 + crossfade + SETTINGS.hop_length
    near = np.zeros(frames, dtype=bool)
    for cut in [*starts[1:], 0, edl.edit_samples(SR)]:
        near |= (centres > cut - reach) & (centres < cut + reach + crossfade)
    return ~near


@pytest.mark.parametrize("hop_aligned", [True, False])
def test_unperturbed_render_frames_match_the_raw_frames_they_point_at(tmp_path, hop_aligned):
    """Frames away from a cut correlate > 0.99 with the raw frame they point at.

    With cuts and crossfade on hop multiples every such frame does. With cuts at arbitrary samples a frame sits up to
    half a hop (5.8 ms) off its raw frame; where a note starts inside the window that shift alone can bring the
    correlation to about 0.98, so there 99% of frames must pass and none may fall below 0.97.
    """
    audio = music(12.0, seed=2)
    edl = draw_edl(12.0, np.random.default_rng(3), min_piece=1.0, max_piece=3.0)
    if hop_aligned:
        hop_seconds = SETTINGS.hop_length / SR
        edl = EditList(tuple((s // hop_seconds * hop_seconds, e // hop_seconds * hop_seconds)
                             for s, e in edl.segments), 2 * hop_seconds)  # a 23 ms crossfade keeps the grid
    assert len(edl.segments) > 1 and edl.crossfade >= 0.005
    write_entry(tmp_path, "cut", audio, edl_to_json(edl))
    (source,), _ = find_audio_sources(str(tmp_path))
    sample = audio_sample(source, SETTINGS, dtype=torch.float32)
    raw, edit, pointers = sample.raw_mel.numpy(), sample.edit_mel.numpy(), sample.pointers.numpy()
    np.testing.assert_array_equal(pointers, edit_pointers(edl, SR, 256, edit.shape[1], raw.shape[1]))
    target = raw[:, pointers]
    a = edit - edit.mean(axis=0)
    b = target - target.mean(axis=0)
    corr = (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    keep = _away_from_cuts(edl, edit.shape[1])
    assert keep.sum() > 0.6 * len(keep)
    if hop_aligned:
        assert corr[keep].min() > 0.99
    else:
        assert (corr[keep] > 0.99).mean() >= 0.99 and corr[keep].min() > 0.97


def test_pack_audio_both_forms(tmp_path):
    src = tmp_path / "src"
    rendered_audio, exported_audio = music(4.0, seed=4), music(5.0, seed=5)
    edl = EditList(((2.0, 4.0), (0.5, 1.7), (2.5, 3.0)), crossfade=0.01)
    export = apply_export(render_edit(exported_audio, SR, edl), SR, ExportPerturbation(-3.0, 1.0, -45.0, 0.5, 7))
    write_entry(src, "a_rendered", rendered_audio, edl_to_json(edl), meta={"recording": "track-a", "tag": 3})
    write_entry(src, "b_exported", exported_audio, edl_to_json(edl), export=export)
    report = pack_audio(str(src), str(tmp_path / "out" / "train-%06d.tar"), workers=2, progress=False)
    assert report.samples == 2 and not report.skipped
    samples = read_back(tmp_path / "out")
    for key, form in (("a_rendered", "rendered"), ("b_exported", "exported")):
        sample = samples[key]
        assert sample.raw_mel.dtype == torch.float16 and sample.raw_mel.shape[0] == 128
        assert sample.meta["edit_form"] == form
        expected = edit_pointers(edl, SR, 256, sample.edit_mel.shape[1], sample.raw_mel.shape[1])
        np.testing.assert_array_equal(sample.pointers.numpy(), expected)
    assert samples["a_rendered"].meta["recording"] == "track-a" and samples["a_rendered"].meta["tag"] == 3
    assert samples["b_exported"].meta["recording"] == "b_exported"
    with open(tmp_path / "out" / "index.json") as f:
        assert json.load(f)["shards"]["train-000000.tar"]["samples"] == 2
    assert sorted(os.listdir(tmp_path / "out")) == ["index.json", "train-000000.tar"]


def _sample_rate_zero_wav(path) -> None:
    soundfile.write(path, np.zeros(100, dtype=np.float32), 8000, subtype="PCM_16")
    with open(path, "r+b") as f:
        f.seek(24)
        f.write((0).to_bytes(4, "little"))  # the fmt chunk's sample rate


BAD_CASES = {
    "unreadable": ("unreadable_audio", "bad.raw.wav"),
    "empty": ("empty_audio", "bad.raw.wav"),
    "nan": ("nan_audio", "bad.raw.wav"),
    "rate0": ("bad_sample_rate", "bad.raw.wav"),
    "not_json": ("bad_edl", "bad.edl.json"),
    "no_segments": ("bad_edl", "bad.edl.json"),
    "end_before_start": ("bad_edl", "bad.edl.json"),
    "outside": ("edl_out_of_range", "bad.edl.json"),
    "long_crossfade": ("bad_edl", "bad.edl.json"),
    "export_short": ("export_length", "bad.edit.wav"),
    "export_long": ("export_length", "bad.edit.wav"),
    "no_recording": ("missing_recording", "bad.edl.json"),
    "no_edl": ("missing_edl", "bad.raw.wav"),
    "dotted_key": ("bad_key", "'ba.d'"),
    "duplicate": ("duplicate_file", "bad.raw.flac"),
}


def make_bad(folder, case: str) -> None:
    audio = music(2.0, seed=6)
    path = os.path.join(folder, "bad.raw.wav")
    edl = {"segments": [[0.0, 1.0], [1.5, 2.0]], "crossfade": 0.01}
    if case in ("unreadable", "empty", "nan", "rate0"):
        write_entry(folder, "bad", audio, edl)
        if case == "unreadable":
            with open(path, "wb") as f:
                f.write(b"this is not audio" * 10)
        elif case == "empty":
            soundfile.write(path, np.zeros(0, dtype=np.float32), SR)
        elif case == "nan":
            soundfile.write(path, np.where(np.arange(len(audio)) == 500, np.nan, audio), SR, subtype="FLOAT")
        else:
            _sample_rate_zero_wav(path)
    elif case in ("not_json", "no_segments", "end_before_start", "outside", "long_crossfade"):
        text = {"not_json": "{segments: oops", "no_segments": '{"segments": []}',
                "end_before_start": '{"segments": [[1.0, 0.5]]}', "outside": '{"segments": [[1.0, 2.5]]}',
                "long_crossfade": '{"segments": [[0.0, 1.0], [1.5, 1.55]], "crossfade": 0.1}'}[case]
        write_entry(folder, "bad", audio, text)
    elif case in ("export_short", "export_long"):
        rendered = render_edit(audio, SR, EditList(((0.0, 1.0), (1.5, 2.0)), 0.01))
        export = rendered[:-2000] if case == "export_short" else np.concatenate([rendered, np.zeros(2000, np.float32)])
        write_entry(folder, "bad", audio, edl, export=export)
    elif case == "no_recording":
        write_entry(folder, "bad", audio, edl)
        os.remove(path)
    elif case == "no_edl":
        write_entry(folder, "bad", audio, edl)
        os.remove(os.path.join(folder, "bad.edl.json"))
    elif case == "dotted_key":
        write_entry(folder, "ba.d", audio, edl)
    elif case == "duplicate":
        write_entry(folder, "bad", audio, edl)
        soundfile.write(os.path.join(folder, "bad.raw.flac"), audio, SR)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_raises_naming_the_file_and_writes_nothing(tmp_path, case):
    src, out = tmp_path / "src", tmp_path / "out"
    write_entry(src, "good", music(2.0, seed=8), {"segments": [[0.0, 1.0]]})
    make_bad(str(src), case)
    reason, file_name = BAD_CASES[case]
    with pytest.raises(SampleError) as info:
        pack_audio(str(src), str(out / "train-%06d.tar"), progress=False)
    assert file_name in str(info.value)
    assert info.value.reason == reason
    assert not out.exists() or os.listdir(out) == []  # no shard, no index, no staging folder
    report = pack_audio(str(src), str(out / "train-%06d.tar"), on_error="skip", progress=False)
    assert report.samples == 1 and len(report.skipped) == 1 and report.skipped[0].key in ("bad", "ba.d")
    assert sorted(os.listdir(out)) == ["index.json", "train-000000.tar"]


def test_export_length_error_says_by_how_much(tmp_path):
    make_bad(str(tmp_path), "export_short")
    (source,), _ = find_audio_sources(str(tmp_path))
    with pytest.raises(SampleError, match=r"0\.091 s \(7\.8 frames\) shorter"):
        audio_sample(source, SETTINGS)


def test_an_error_after_shards_were_written_leaves_no_shard(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(3):
        write_entry(src, f"k{i}", music(2.0, seed=i), {"segments": [[0.0, 1.0]]})
    write_entry(src, "z", music(2.0, seed=9), {"segments": [[0.0, 9.0]]})
    with pytest.raises(SampleError, match="z.edl.json"):
        pack_audio(str(src), str(out / "train-%06d.tar"), max_samples=1, progress=False)
    assert os.listdir(out) == []


def test_simulate_edits_is_deterministic_and_packs(tmp_path):
    music_dir = tmp_path / "music"
    music_dir.mkdir()
    soundfile.write(music_dir / "song one.flac", np.stack([music(9.0, seed=10)] * 2, axis=1), 44100)
    soundfile.write(music_dir / "two.wav", music(7.0, seed=11), SR)
    first = simulate_edits(str(music_dir), str(tmp_path / "a"), per_track=2, seed=5, export_fraction=0.5,
                           progress=False)
    simulate_edits(str(music_dir), str(tmp_path / "b"), per_track=2, seed=5, export_fraction=0.5, progress=False)
    simulate_edits(str(music_dir), str(tmp_path / "c"), per_track=2, seed=6, export_fraction=0.5, progress=False)
    assert (first.tracks, first.edits) == (2, 4)
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == sorted(os.listdir(tmp_path / "b"))
    assert "song_one-e0.raw.flac" in names and "two-e1.edl.json" in names
    for name in names:
        if not name.endswith(".flac") and not name.startswith("two.raw"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "two-e0.edl.json").read_bytes() != (tmp_path / "c" / "two-e0.edl.json").read_bytes()
    edl = json.loads((tmp_path / "a" / "song_one-e1.edl.json").read_text())
    assert len(edl["segments"]) > 1 and 0.005 <= edl["crossfade"] <= 0.04
    assert json.loads((tmp_path / "a" / "song_one-e1.meta.json").read_text())["recording"] == "song_one"
    report = pack_audio(str(tmp_path / "a"), str(tmp_path / "out" / "s-%06d.tar"), progress=False)
    assert report.samples == 4


def test_draw_edl_cuts_at_arbitrary_positions_and_is_keyed():
    edl = draw_edl(120.0, sample_rng(0, 0, "simulate-edits", "k"))
    assert edl == draw_edl(120.0, sample_rng(0, 0, "simulate-edits", "k"))
    assert len(edl.segments) >= 2
    hop_seconds = 256 / SR
    assert any(abs(s / hop_seconds - round(s / hop_seconds)) > 1e-3 for s, _ in edl.segments if s > 0)
    lengths = [end - start for start, end in edl.segments]
    assert min(lengths) >= 2.0


def test_cli_pack_audio_and_missing_extra(tmp_path, monkeypatch, capsys):
    write_entry(tmp_path / "src", "k", music(2.0, seed=12), {"segments": [[0.0, 1.5]]})
    assert main(["pack-audio", str(tmp_path / "src"), str(tmp_path / "out" / "t-%06d.tar"), "--n-mels", "64",
                 "--no-progress"]) == 0
    assert "pack-audio: 1 samples into 1 shard(s)" in capsys.readouterr().out
    assert read_back(tmp_path / "out")["k"].raw_mel.shape[0] == 64
    import streams.tools

    monkeypatch.setitem(sys.modules, "streams.tools.audio_pack", None)  # as if soundfile, soxr or librosa were missing
    monkeypatch.delattr(streams.tools, "audio_pack")
    with pytest.raises(SystemExit):
        main(["pack-audio", str(tmp_path / "src"), str(tmp_path / "o2" / "t-%06d.tar")])
    assert "pointer-streams[audio]" in capsys.readouterr().err
