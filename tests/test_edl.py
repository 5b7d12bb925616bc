"""EDLs: parsing errors, and the rendering and pointer rules on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.audio.edl import EditList, _fades, edit_pointers, parse_edl, render_edit, validate_edl
from streams.sample import SampleError


def test_render_hand_computed_with_crossfade():
    audio = np.arange(100, dtype=np.float32)
    edl = EditList(((1.0, 2.0), (3.0, 4.5)), crossfade=0.2)  # at 10 Hz: [10, 20) and [30, 45), X = 2
    out = render_edit(audio, 10, edl)
    assert len(out) == 10 + 15 - 2 == edl.edit_samples(10)
    fade_in = np.sin(0.5 * np.pi * np.array([0.25, 0.75]))
    fade_out = np.cos(0.5 * np.pi * np.array([0.25, 0.75]))
    np.testing.assert_allclose(out[:8], audio[10:18])
    np.testing.assert_allclose(out[8:10], audio[18:20] * fade_out + audio[30:32] * fade_in, rtol=1e-6)
    np.testing.assert_allclose(out[10:], audio[32:45])
    assert audio.tolist() == list(range(100))  # input untouched


def test_fades_are_equal_power():
    fade_in, fade_out = _fades(441)
    np.testing.assert_allclose(fade_in ** 2 + fade_out ** 2, 1.0, rtol=1e-6)
    assert fade_in[0] < 0.01 and fade_out[-1] < 0.01


def test_render_repeats_and_reorders():
    audio = np.arange(10, dtype=np.float32)
    out = render_edit(audio, 1, EditList(((6.0, 8.0), (0.0, 2.0), (6.0, 7.0))))
    assert out.tolist() == [6, 7, 0, 1, 6]


def test_pointers_hand_computed_with_crossfade():
    # 100 Hz, hop 10: segments [0, 100) and [200, 300) samples, X = 20; segment 1 starts at edit sample 80 and owns
    # frames from the crossfade's midpoint (edit sample 90) on
    edl = EditList(((0.0, 1.0), (2.0, 3.0)), crossfade=0.2)
    frames = 1 + edl.edit_samples(100) // 10
    pointers = edit_pointers(edl, 100, 10, frames, raw_frames=31)
    assert pointers.tolist() == [*range(9), *range(21, 31)]
    assert pointers.dtype == np.int64


def test_pointers_round_half_up_and_clip():
    # a cut 5 samples past frame 0: raw sample 5 + 10 * i, i.e. frame i + 0.5, rounds up to i + 1
    edl = EditList(((0.05, 0.5),))
    assert edit_pointers(edl, 100, 10, 5, raw_frames=50).tolist() == [1, 2, 3, 4, 5]
    assert edit_pointers(edl, 100, 10, 5, raw_frames=3).tolist() == [1, 2, 2, 2, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 20)), min_size=1, max_size=6), st.sampled_from([4, 8]))
def test_hop_aligned_cuts_without_crossfade_are_frame_arithmetic(frame_segments, hop):
    sr = 100
    raw_frames = 61
    edl = EditList(tuple((start * hop / sr, (start + length) * hop / sr) for start, length in frame_segments))
    expected = np.concatenate([np.arange(start, start + length) for start, length in frame_segments])
    pointers = edit_pointers(edl, sr, hop, len(expected), raw_frames)
    np.testing.assert_array_equal(pointers, expected)


@pytest.mark.parametrize(("text", "words"), [
    ("{not json", "not JSON"),
    ('{"segments": []}', "non-empty list"),
    ('{"crossfade": 0.1}', "segments"),
    ('{"segments": [[0, "a"]]}', "segments[0]"),
    ('{"segments": [[0, 1]], "crossfade": -1}', "crossfade"),
    ('{"segments": [[0, 1]], "fade": 0.1}', "unknown EDL field"),
    ('[[0, 1]]', "JSON object"),
])
def test_parse_errors_name_the_file(text, words):
    with pytest.raises(SampleError, match="x.edl.json") as info:
        parse_edl(text, "x.edl.json")
    assert words in str(info.value) and info.value.reason == "bad_edl"


@pytest.mark.parametrize(("segments", "crossfade", "reason", "words"), [
    (((1.0, 1.0),), 0.0, "bad_edl", "end <= start"),
    (((2.0, 1.0),), 0.0, "bad_edl", "end <= start"),
    (((0.0, 10.5),), 0.0, "edl_out_of_range", "outside the recording"),
    (((-0.5, 1.0),), 0.0, "edl_out_of_range", "outside the recording"),
    (((0.0, 1.0), (2.0, 2.1)), 0.2, "bad_edl", "longer than segments[1]"),
])
def test_validate_errors(segments, crossfade, reason, words):
    with pytest.raises(SampleError, match="r.edl.json") as info:
        validate_edl(EditList(segments, crossfade), 10.0, 100, "r.edl.json")
    assert info.value.reason == reason and words in str(info.value)


def test_single_segment_may_have_any_crossfade():
    validate_edl(EditList(((0.0, 0.1),), 1.0), 10.0, 100, "r.edl.json")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(12, 120)), min_size=1, max_size=5),
       st.integers(0, 12), st.sampled_from([3, 4, 8]))
def test_each_frame_points_at_the_raw_sample_the_rendering_put_at_its_centre(pieces, crossfade, hop):
    """At sample rate 1 a ramp recording renders to its own raw sample numbers: outside crossfades the edit
    sample at a frame's centre is the raw sample the pointer rule names, and the pointer rounds it."""
    raw = np.arange(420, dtype=np.float32)
    edl = EditList(tuple((float(s), float(s + n)) for s, n in pieces), float(crossfade if len(pieces) > 1 else 0))
    edit = render_edit(raw, 1, edl)
    assert len(edit) == sum(n for _, n in pieces) - edl.crossfade * (len(pieces) - 1)
    raw_frames = 1 + len(raw) // hop
    pointers = edit_pointers(edl, 1, hop, 1 + len(edit) // hop, raw_frames)
    assert pointers.min() >= 0 and pointers.max() < raw_frames
    centres = np.arange(len(pointers)) * hop
    in_crossfade = np.zeros(len(centres), dtype=bool)
    for start in edl.edit_starts(1)[1:]:
        in_crossfade |= (centres >= start) & (centres < start + int(edl.crossfade))
    clean = ~in_crossfade & (centres < len(edit))
    expected = np.clip(np.floor(edit[centres[clean]] / hop + 0.5), 0, raw_frames - 1)
    np.testing.assert_array_equal(pointers[clean], expected)
