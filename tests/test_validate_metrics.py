"""Pointer metrics and the jump-penalised decoding, on cases worked out by hand."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.validation.metrics import JumpDecoder, PointerCounts, cut_positions, decode_path, match_cuts


def test_cuts_and_one_to_one_matching():
    assert cut_positions([0, 1, 2, 3]).tolist() == []
    assert cut_positions([5, 6, 0, 1, 1, 9]).tolist() == [2, 4, 5]
    # two predictions near one true cut match it once; the second true cut is 4 away (> tau = 2)
    assert match_cuts(np.array([10, 30]), np.array([9, 11, 26]), tau=2) == 1
    assert match_cuts(np.array([10, 30]), np.array([9, 11, 28]), tau=2) == 2
    assert match_cuts(np.array([10]), np.array([12]), tau=1) == 0


def test_counts_summary_by_hand():
    counts = PointerCounts(tau=2)
    true = np.array([0, 1, 2, 10, 11, 12])       # one cut, at edit frame 3
    predicted = np.array([0, 1, 5, 10, 11, 40])  # errors 0 0 3 0 0 28
    decoded = np.array([0, 1, 2, 3, 10, 11])     # one cut, at 4: within tau of 3
    counts.add(predicted, true, decoded)
    counts.add(np.array([7, 8]), np.array([7, 8]), np.array([7, 3]))  # no true cut, one invented
    out = counts.summary()
    assert out["exact"] == pytest.approx(6 / 8)
    assert out["within_2"] == pytest.approx(6 / 8)
    assert out["median_abs_err"] == 0.0
    assert out["decoded_exact"] == pytest.approx(4 / 8)
    assert (out["cut_precision"], out["cut_recall"]) == (0.5, 1.0)
    assert out["cut_f1"] == pytest.approx(2 / 3)
    strict = PointerCounts(tau=0)
    strict.add(predicted, true, decoded)
    assert strict.summary()["cut_f1"] == 0.0


def test_no_cuts_anywhere_scores_one_and_empty_set_is_an_error():
    counts = PointerCounts()
    counts.add(np.arange(5), np.arange(5), np.arange(5))
    assert counts.summary()["cut_f1"] == 1.0
    with pytest.raises(ValueError, match="no edit frames"):
        PointerCounts().summary()


def _brute_force(scores, penalty):
    best = -np.inf
    for path in itertools.product(range(scores.shape[1]), repeat=scores.shape[0]):
        total = sum(scores[i, p] for i, p in enumerate(path))
        total -= penalty * sum(1 for i in range(1, len(path)) if path[i] != path[i - 1] + 1)
        if total > best + 1e-12:
            best = total
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("penalty", [0.0, 0.7, 3.0])
def test_decoding_finds_the_best_penalised_path(seed, penalty):
    rng = np.random.default_rng(seed)
    scores = np.log(rng.dirichlet(np.ones(4), size=4))
    path = decode_path(scores, penalty)
    jumps = int(np.sum(path[1:] != path[:-1] + 1))
    value = scores[np.arange(4), path].sum() - penalty * jumps
    assert value == pytest.approx(_brute_force(scores, penalty))


def test_decoding_in_chunks_equals_one_pass_and_handles_wide_raw():
    rng = np.random.default_rng(1)
    scores = np.log(rng.dirichlet(np.ones(37), size=25))  # T_raw not a multiple of 8 (packed bits)
    decoder = JumpDecoder([2.0])
    for start in range(0, 25, 7):
        decoder.feed(scores[start:start + 7])
    assert decoder.finish().tolist() == [decode_path(scores, 2.0).tolist()]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), raw=st.integers(1, 40), edit=st.integers(1, 30),
       penalties=st.lists(st.sampled_from([0.0, 0.3, 1.0, 2.5, 8.0, 100.0]), min_size=1, max_size=5))
def test_one_decoder_of_several_penalties_equals_one_decoder_per_penalty(seed, raw, edit, penalties):
    rng = np.random.default_rng(seed)
    scores = np.log(rng.dirichlet(np.ones(raw), size=edit)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.1] = -np.inf  # unreachable raw frames, as padding gives
    scores[np.arange(edit), rng.integers(0, raw, edit)] = 0.0  # every row keeps a finite entry
    decoder = JumpDecoder(penalties)
    decoder.feed(scores[:edit // 2])
    decoder.feed(scores[edit // 2:])
    together = decoder.finish()
    assert together.shape == (len(penalties), edit)
    for penalty, path in zip(penalties, together):
        assert path.tolist() == decode_path(scores, penalty).tolist()


def test_decoding_smooths_a_flicker_that_argmax_keeps():
    scores = np.full((6, 10), np.log(0.05))
    scores[np.arange(6), [2, 3, 9, 5, 6, 7]] = np.log(0.5)
    scores[2, 4] = np.log(0.4)  # the true frame, narrowly second
    assert scores.argmax(1).tolist() == [2, 3, 9, 5, 6, 7]
    assert decode_path(scores, 1.0).tolist() == [2, 3, 4, 5, 6, 7]
    for bad in (-1.0, [], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="jump_penalty"):
            JumpDecoder(bad)


def test_decoding_resolves_small_differences_after_long_recordings():
    # 20,000 rows of -20: absolute float32 totals (-4e5, spaced 0.03 apart) would lose the last
    # row's 0.01; totals kept relative to the best do not
    scores = np.full((20_000, 16), -20.0, dtype=np.float32)
    scores[-1, 3] = -19.99
    assert decode_path(scores, 0.0)[-1] == 3


def test_decoding_a_row_with_nowhere_to_point_is_an_error():
    scores = np.zeros((3, 4))
    scores[1] = -np.inf
    with pytest.raises(ValueError, match="no finite entry"):
        decode_path(scores, 1.0)
