"""Spectral stages in a row write each mel once: a stage that receives the sample the spectral stage
before it made writes into its tensors. The values must be bit-identical to running each stage's
``augment`` on its own (new tensors every time), for the same (seed, epoch, key)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import Pipe
from streams.sample import Sample
from streams.stages.channel_dropout import ChannelDropoutStage
from streams.stages.gain import GainStage
from streams.stages.noise import NoiseStage
from streams.stages.spec_augment import SpecAugmentStage

from .harness import tagged_samples

MODES = ("shared", "independent")


@st.composite
def spectral_chains(draw: st.DrawFn) -> list:
    """Two to five spectral stages (repeats allowed) with drawn modes, fills and probabilities."""
    probability = st.sampled_from([1.0, 0.7])
    makers = {
        "gain": lambda: GainStage(probability=draw(probability), mode=draw(st.sampled_from(MODES)),
                                  domain=draw(st.sampled_from(("linear", "db")))),
        "channel_dropout": lambda: ChannelDropoutStage(probability=draw(probability), mode=draw(st.sampled_from(MODES)),
                                                       dropout_rate=draw(st.sampled_from([0.0, 0.3, 1.0]))),
        "spec_augment": lambda: SpecAugmentStage(probability=draw(probability), mode=draw(st.sampled_from(MODES)),
                                                 fill=draw(st.sampled_from(("zero", "mean"))), freq_width=3,
                                                 time_width=draw(st.sampled_from([2, 40])), max_time_fraction=0.5),
        "noise": lambda: NoiseStage(probability=draw(probability), mode=draw(st.sampled_from(MODES))),
    }
    names = draw(st.lists(st.sampled_from(sorted(makers)), min_size=2, max_size=5))
    return [makers[name]() for name in names]


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes, so that NaNs and signed zeros compare exactly."""
    return tensor.contiguous().view(torch.int16 if tensor.element_size() == 2 else torch.int32)


def _one_by_one(sample: Sample, stages: list, names: tuple[str, ...], seed: int, epoch: int) -> Sample:
    for stage, name in zip(stages, names):
        sample = stage.augment(sample, seed=seed, epoch=epoch, stage=name)
    return sample


@settings(max_examples=40, deadline=None)
@given(samples=st.lists(tagged_samples(max_mels=12, max_raw_frames=200, max_edit_frames=150, min_edit_frames=1),
                        min_size=1, max_size=3, unique_by=lambda s: s.key),
       stages=spectral_chains(), seed=st.integers(0, 3), epoch=st.integers(0, 3))
def test_spectral_stages_in_a_pipe_match_each_stage_alone_bit_for_bit(samples, stages, seed, epoch):
    snapshots = [(s.raw_mel.clone(), s.edit_mel.clone()) for s in samples]
    pipe = Pipe([*Pipe.from_samples(samples, seed=seed).stages, *stages], seed=seed)
    pipe.set_epoch(epoch)
    names = pipe.stage_names[1:]
    outputs = list(pipe)
    assert [out.key for out in outputs] == [s.key for s in samples]
    for sample, out, (raw, edit) in zip(samples, outputs, snapshots):
        expected = _one_by_one(sample, stages, names, seed, epoch)
        assert torch.equal(_bits(out.raw_mel), _bits(expected.raw_mel))
        assert torch.equal(_bits(out.edit_mel), _bits(expected.edit_mel))
        assert out.meta == expected.meta and torch.equal(out.pointers, expected.pointers)
        assert torch.equal(_bits(sample.raw_mel), _bits(raw)) and torch.equal(_bits(sample.edit_mel), _bits(edit))


class _RecordingGain(GainStage):
    """Gain that keeps its output alive (so no later allocation can reuse its memory)."""

    def apply(self, sample: Sample, params: dict, in_place: bool = False) -> Sample:
        self.out = super().apply(sample, params, in_place)
        return self.out


def test_a_chain_allocates_each_mel_once():
    raw = torch.randn(8, 50)
    sample = Sample("a", raw, raw[:, :30].clone(), torch.arange(30))
    gain = _RecordingGain(probability=1.0)
    stages = [gain, ChannelDropoutStage(probability=1.0, dropout_rate=0.5), SpecAugmentStage(probability=1.0),
              NoiseStage(probability=1.0)]
    out = next(iter(Pipe([*Pipe.from_samples([sample]).stages, *stages], seed=0)))
    assert out.raw_mel.data_ptr() == gain.out.raw_mel.data_ptr() != raw.data_ptr()  # later stages wrote into them
    assert out.edit_mel.data_ptr() == gain.out.edit_mel.data_ptr()
    assert [record["stage"] for record in out.meta["augmentations"]] == ["gain", "channel_dropout", "spec_augment",
                                                                         "noise"]
