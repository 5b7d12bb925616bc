"""The three evaluation conditions of the validation set.

- ``stored``: the recordings as stored;
- ``like_training``: the config's spectral augmentations (gain, channel dropout, SpecAugment,
  noise: those of its blocks that are enabled) applied once to every recording with probability
  1, from a fixed seed, so every arm and seed is scored on the same perturbed set;
- ``unlike_training``: on the edit only, perturbations no stage makes, as a lossy export would:
  a spectral tilt (a per-band offset rising linearly by 2 std across the bands), a strong gain
  (log-mel values x 1.5 plus 2 std), a time smear (a 5-frame triangular moving average) and the
  top quarter of the bands flattened to their minimum (a low-pass). Tilt and gain are per-band
  affine maps, which per-band standardisation (the model's first step and the baseline's) undoes
  exactly; they stay in as the check that it does. The smear and the band loss are what the
  condition really tests.

Crop, chunk shuffle and concatenation change what a sample *is*, not how it sounds, and are not
applied: evaluation runs on whole recordings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from streams import Sample
from streams.stages.augment import AugmentStage
from streams.stages.registry import REGISTRY, settings_values

from ..config import Config

__all__ = ["CONDITIONS", "SPECTRAL_BLOCKS", "like_training", "lossy_edit", "make_conditions", "unlike_training"]

CONDITIONS = ("stored", "like_training", "unlike_training")
SPECTRAL_BLOCKS = ("gain", "channel_dropout", "spec_augment", "noise")
CONDITION_SEED = 20220706


def _spectral_stages(config: Config) -> list[AugmentStage]:
    """The config's enabled spectral stages, in pipe order, each firing with probability 1, no schedule."""
    blocks = {name: getattr(config.augmentation, name) for name in SPECTRAL_BLOCKS}
    return [REGISTRY[name](**{**settings_values(block), "probability": 1.0}) for name, block in blocks.items()
            if block.enabled]


def like_training(samples: Sequence[Sample], config: Config, seed: int = CONDITION_SEED) -> list[Sample]:
    """``samples`` through the config's enabled spectral augmentations (probability 1, fixed seed)."""
    stages = _spectral_stages(config)
    out = []
    for sample in samples:
        for stage in stages:
            sample = stage.augment(sample, seed=seed, epoch=0)
        out.append(sample)
    return out


def lossy_edit(edit_mel: torch.Tensor) -> torch.Tensor:
    """The ``unlike_training`` perturbation of one ``(n_mels, T)`` edit mel (same shape and dtype).

    >>> lossy_edit(torch.zeros(8, 5)).shape
    torch.Size([8, 5])
    """
    mel = edit_mel.float()
    n_mels = mel.shape[0]
    spread = mel.std().clamp_min(1e-6)
    tilt = torch.linspace(-spread.item(), spread.item(), n_mels).unsqueeze(1)
    kernel = torch.tensor([1.0, 2.0, 3.0, 2.0, 1.0]) / 9.0
    padded = torch.nn.functional.pad(mel.unsqueeze(0), (2, 2), mode="replicate")
    smeared = torch.nn.functional.conv1d(padded.transpose(0, 1), kernel.view(1, 1, 5)).transpose(0, 1)[0]
    top = n_mels - n_mels // 4
    smeared[top:] = smeared[top:].amin(dim=1, keepdim=True)
    return (1.5 * (smeared + tilt) + 2.0 * spread).to(edit_mel.dtype)


def unlike_training(samples: Sequence[Sample]) -> list[Sample]:
    """``samples`` with :func:`lossy_edit` applied to each edit (raw mels and pointers untouched)."""
    return [s.replace(edit_mel=lossy_edit(s.edit_mel)) for s in samples]


def make_conditions(samples: Sequence[Sample], config: Config,
                    names: Sequence[str] = CONDITIONS) -> dict[str, list[Sample]]:
    """``{condition: samples}`` for the ``names`` among :data:`CONDITIONS`, in that order."""
    samples = list(samples)
    makers = {"stored": lambda: samples, "like_training": lambda: like_training(samples, config),
              "unlike_training": lambda: unlike_training(samples)}
    return {name: makers[name]() for name in CONDITIONS if name in names}

