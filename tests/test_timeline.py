"""The edit -> raw map: it is the EDL pointer rule exactly, and time scaling composes exactly."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.audio.edl import EditList, edit_pointers, validate_edl
from streams.audio.mel import MelSettings
from streams.audio.sample import AudioSample, check_audio_sample
from streams.audio.timeline import EditMap, Piece, frame_pointers
from streams.sample import SampleError


@st.composite
def edls(draw) -> tuple[EditList, int, int]:
    """A valid EDL at some sample rate, with cuts at arbitrary samples: ``(edl, sr, raw_samples)``."""
    sr = draw(st.sampled_from([50, 100, 441, 1000]))
    raw_samples = draw(st.integers(40, 3000))
    count = draw(st.integers(1, 6))
    segments = []
    for _ in range(count):
        start = draw(st.integers(0, raw_samples - 2))
        end = draw(st.integers(start + 1, min(raw_samples, start + 1500)))
        segments.append((start / sr, end / sr))
    shortest = min(round(e * sr) - round(s * sr) for s, e in segments)
    crossfade = draw(st.integers(0, shortest if count > 1 else 0)) / sr
    edl = EditList(tuple(segments), crossfade)
    validate_edl(edl, raw_samples / sr, sr, "drawn")
    return edl, sr, raw_samples


@settings(max_examples=300, deadline=None)
@given(edls(), st.sampled_from([1, 3, 8, 10, 64]))
def test_frame_pointers_are_the_edl_pointer_rule_exactly(drawn, hop):
    edl, sr, raw_samples = drawn
    edit_frames = 1 + edl.edit_samples(sr) // hop
    raw_frames = 1 + raw_samples // hop
    edit_map = EditMap.from_edl(edl, sr)
    assert edit_map.edit_samples == edl.edit_samples(sr)
    expected = edit_pointers(edl, sr, hop, edit_frames, raw_frames)
    got = frame_pointers(edit_map, hop, edit_frames, raw_frames)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=200, deadline=None)
@given(edls(), st.fractions(Fraction(1, 2), Fraction(2), max_denominator=1000),
       st.fractions(Fraction(1, 2), Fraction(2), max_denominator=1000))
def test_stretches_compose_exactly(drawn, edit_ratio, raw_ratio):
    edl, sr, _ = drawn
    edit_map = EditMap.from_edl(edl, sr)
    stretched = edit_map.stretch_edit(edit_ratio).stretch_raw(raw_ratio)
    assert stretched.edit_samples == edit_map.edit_samples * edit_ratio
    # old edit sample e is now at e * edit_ratio, and its raw position r at r * raw_ratio: exact in fractions
    for old, new in zip(edit_map.pieces, stretched.pieces):
        assert new.edit_start == old.edit_start * edit_ratio
        assert new.raw_start == old.raw_start * raw_ratio
        assert new.rate == old.rate * raw_ratio / edit_ratio
        assert new.blend == old.blend * edit_ratio
    positions = np.arange(0, int(edit_map.edit_samples), 7, dtype=np.float64) + 0.25  # off the takeovers
    np.testing.assert_allclose(stretched.raw_positions(positions * float(edit_ratio)),
                               edit_map.raw_positions(positions) * float(raw_ratio), rtol=1e-12, atol=1e-9)
    # stretching back undoes it exactly
    assert stretched.stretch_edit(1 / edit_ratio).stretch_raw(1 / raw_ratio) == edit_map


def test_hand_computed_crossfade_takeover_and_joins():
    edl = EditList(((0.0, 1.0), (2.0, 3.0)), crossfade=0.2)  # 100 Hz: X = 20, segment 1 starts at edit sample 80
    edit_map = EditMap.from_edl(edl, 100)
    assert edit_map.pieces == (Piece(0, 0, 1, 0), Piece(90, 210, 1, 10))
    assert edit_map.raw_positions(np.array([89.0, 90.0, 91.5])).tolist() == [89.0, 210.0, 211.5]
    near = edit_map.near_joins(np.array([70.0, 76.0, 104.0, 105.0]), radius=5)
    assert near.tolist() == [False, True, True, False]
    assert edit_map.as_meta() == {"edit_samples": 180.0, "pieces": [[0.0, 0.0, 1.0, 0.0], [90.0, 210.0, 1.0, 10.0]]}


def test_a_segment_as_long_as_the_crossfade_owns_no_sample():
    edl = EditList(((0.0, 0.5), (1.0, 1.1), (2.0, 2.5)), crossfade=0.1)  # 100 Hz: the middle one is X long
    edit_map = EditMap.from_edl(edl, 100)
    assert [float(p.edit_start) for p in edit_map.pieces] == [0.0, 45.0]
    np.testing.assert_array_equal(frame_pointers(edit_map, 5, 20, 60), edit_pointers(edl, 100, 5, 20, 60))


@pytest.mark.parametrize("pieces, message", [
    ((), "at least one piece"),
    ((Piece(1, 0, 1),), "first piece must take over at edit sample 0"),
    ((Piece(0, 0, 0),), "rate must be > 0"),
    ((Piece(0, 0, 1), Piece(0, 5, 1)), "takeovers must increase"),
    ((Piece(0, float("nan"), 1),), "raw_start must be a finite number"),
])
def test_bad_maps_are_refused(pieces, message):
    with pytest.raises(ValueError, match=message):
        EditMap(pieces, 10)


@pytest.mark.parametrize("ratio", [0, -1.5, float("inf")])
def test_stretch_ratio_must_be_positive(ratio):
    with pytest.raises(ValueError, match="ratio must be"):
        EditMap.identity(10).stretch_edit(ratio)


def _audio_sample(**changes) -> AudioSample:
    fields = {"key": "k", "raw": torch.zeros(100), "edit": torch.zeros(100), "sample_rate": 22050,
              "edit_map": EditMap.identity(100), "mel": MelSettings(), "url": "s.tar"}
    return AudioSample(**{**fields, **changes})


def test_check_audio_sample_accepts_a_good_one_and_records_provenance():
    sample = _audio_sample()
    assert check_audio_sample(sample) is sample
    recorded = sample.with_record("reedit", segments=3)
    assert recorded.meta == {"augmentations": [{"stage": "reedit", "segments": 3}]} and sample.meta == {}


@pytest.mark.parametrize("changes, reason", [
    ({"raw": torch.zeros(2, 50)}, "bad_shape"),
    ({"edit": torch.zeros(100, dtype=torch.float64)}, "bad_dtype"),
    ({"raw": torch.zeros(0)}, "empty"),
    ({"raw": torch.full((100,), float("nan"))}, "not_finite"),
    ({"sample_rate": 0}, "bad_sample_rate"),
    ({"sample_rate": 16000}, "bad_sample_rate"),
    ({"edit_map": EditMap.identity(99)}, "length_mismatch"),
])
def test_check_audio_sample_names_the_key(changes, reason):
    with pytest.raises(SampleError, match="audio sample 'k' in shard s.tar") as caught:
        check_audio_sample(_audio_sample(**changes))
    assert caught.value.reason == reason and caught.value.key == "k"
