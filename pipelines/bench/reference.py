"""The augmentation plan's reference functions, reproduced only as the benchmark's baseline.

Nothing in the pipeline uses this module. ``python -m pipelines bench --parts reference`` times
each of our stages against these functions to report the speed-up. They do what the plan's code
does, the way it does it: Python loops over masks and chunks, a per-frame ``dict`` mapping and a
per-pointer ``.item()`` list in chunk shuffle, one tensor operation per mel. The only change is
where randomness comes from: the plan draws from the global ``random`` module and torch's global
generator; here every draw comes from an explicit ``random.Random`` instance or
``torch.Generator`` passed in (the project allows no global RNG), which costs the same.

Their edge-case behaviour is the plan's too (``time_mask`` fails on fewer than 10 frames,
``random_crop`` fails on fewer than ``min_crop_len`` edit frames): use them only on the
benchmark's samples. Tensors are ``(n_mels, frames)`` mels and ``(T_edit,)`` int64 pointers.

>>> import random, torch
>>> raw = torch.arange(8.0).reshape(1, 8)
>>> shuffled, edit, pointers = chunk_shuffle(raw, raw[:, [1, 6]], torch.tensor([1, 6]), random.Random(0),
...                                          chunk_size=2, shuffle_prob=1.0)
>>> bool((shuffled[:, pointers] == edit).all())
True
"""

from __future__ import annotations

import random

import torch

__all__ = [
    "REFERENCE_AUGMENTATIONS",
    "add_noise",
    "channel_dropout",
    "chunk_shuffle",
    "concatenate_samples",
    "freq_mask",
    "random_crop",
    "reference_augment",
    "reference_generators",
    "scale_amplitude",
    "time_mask",
]

Triple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


# --- Category A (spectral) ------------------------------------------------------------------------

def add_noise(mel: torch.Tensor, generator: torch.Generator, noise_level: float = 0.1) -> torch.Tensor:
    """A1: Gaussian noise of std ``noise_level`` × the mel's std (``randn_like`` with a generator)."""
    noise = torch.randn(mel.shape, generator=generator, dtype=mel.dtype) * mel.std() * noise_level
    return mel + noise


def freq_mask(mel: torch.Tensor, rng: random.Random, num_masks: int = 2, max_width: int = 20) -> torch.Tensor:
    """A2: zero ``num_masks`` random bands of 1..``max_width`` mel bins."""
    mel = mel.clone()
    n_mels = mel.shape[0]

    for _ in range(num_masks):
        width = rng.randint(1, max_width)
        start = rng.randint(0, n_mels - width)
        mel[start:start + width, :] = 0

    return mel


def time_mask(mel: torch.Tensor, rng: random.Random, num_masks: int = 2, max_width: int = 50) -> torch.Tensor:
    """A2: zero ``num_masks`` random spans of 1..min(``max_width``, frames // 10) frames."""
    mel = mel.clone()
    time_steps = mel.shape[1]

    for _ in range(num_masks):
        width = rng.randint(1, min(max_width, time_steps // 10))
        start = rng.randint(0, time_steps - width)
        mel[:, start:start + width] = 0

    return mel


def scale_amplitude(mel: torch.Tensor, rng: random.Random, min_scale: float = 0.8,
                    max_scale: float = 1.2) -> torch.Tensor:
    """A3: multiply by a factor drawn in [min_scale, max_scale]."""
    scale = rng.uniform(min_scale, max_scale)
    return mel * scale


def channel_dropout(mel: torch.Tensor, generator: torch.Generator, dropout_prob: float = 0.1) -> torch.Tensor:
    """A4: zero each mel channel with probability ``dropout_prob``."""
    mel = mel.clone()
    mask = torch.rand(mel.shape[0], generator=generator) > dropout_prob
    mel = mel * mask.unsqueeze(1)
    return mel


# --- Category B (pointer-aware) -------------------------------------------------------------------

def chunk_shuffle(raw_mel: torch.Tensor, edit_mel: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
                  chunk_size: int = 1000, shuffle_prob: float = 0.5) -> Triple:
    """B1: permute ``chunk_size``-frame chunks of raw; remap pointers through a per-frame dict."""
    if rng.random() > shuffle_prob:
        return raw_mel, edit_mel, pointers

    raw_time = raw_mel.shape[1]
    n_chunks = raw_time // chunk_size

    if n_chunks < 2:
        return raw_mel, edit_mel, pointers

    chunks = []
    for i in range(n_chunks):
        start = i * chunk_size
        end = start + chunk_size
        chunks.append(raw_mel[:, start:end])

    remainder_start = n_chunks * chunk_size
    if remainder_start < raw_time:
        chunks.append(raw_mel[:, remainder_start:])

    chunk_indices = list(range(len(chunks)))
    rng.shuffle(chunk_indices)

    old_to_new = {}
    new_pos = 0
    for new_chunk_idx, old_chunk_idx in enumerate(chunk_indices):
        old_start = old_chunk_idx * chunk_size
        chunk_len = chunks[old_chunk_idx].shape[1]
        for offset in range(chunk_len):
            old_to_new[old_start + offset] = new_pos + offset
        new_pos += chunk_len

    shuffled_raw = torch.cat([chunks[i] for i in chunk_indices], dim=1)

    new_pointers = torch.tensor([old_to_new.get(p.item(), p.item()) for p in pointers])

    return shuffled_raw, edit_mel, new_pointers


def random_crop(raw_mel: torch.Tensor, edit_mel: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
                min_crop_len: int = 500, max_crop_len: int = 5000) -> Triple:
    """B2: a window of edit frames; raw cut to the frames it points at ± 100 (views, not copies)."""
    edit_time = edit_mel.shape[1]

    crop_len = rng.randint(min_crop_len, min(max_crop_len, edit_time))

    max_start = edit_time - crop_len
    if max_start <= 0:
        return raw_mel, edit_mel, pointers

    edit_start = rng.randint(0, max_start)
    edit_end = edit_start + crop_len

    cropped_edit = edit_mel[:, edit_start:edit_end]
    cropped_pointers = pointers[edit_start:edit_end]

    min_raw_ptr = cropped_pointers.min().item()
    max_raw_ptr = cropped_pointers.max().item()

    context_pad = 100
    raw_start = max(0, min_raw_ptr - context_pad)
    raw_end = min(raw_mel.shape[1], max_raw_ptr + context_pad + 1)

    cropped_raw = raw_mel[:, raw_start:raw_end]

    adjusted_pointers = cropped_pointers - raw_start

    adjusted_pointers = adjusted_pointers.clamp(0, cropped_raw.shape[1] - 1)

    return cropped_raw, cropped_edit, adjusted_pointers


def concatenate_samples(sample1: Triple, sample2: Triple) -> Triple:
    """B3: raw after raw, edit after edit, the second sample's pointers shifted by the first raw length."""
    raw1, edit1, ptr1 = sample1
    raw2, edit2, ptr2 = sample2

    raw1_len = raw1.shape[1]

    combined_raw = torch.cat([raw1, raw2], dim=1)

    combined_edit = torch.cat([edit1, edit2], dim=1)

    ptr2_adjusted = ptr2 + raw1_len

    combined_pointers = torch.cat([ptr1, ptr2_adjusted])

    return combined_raw, combined_edit, combined_pointers


# --- one sample through one augmentation, as the plan's Augmentor would call them ----------------

def _noise(raw: torch.Tensor, edit: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
           generator: torch.Generator) -> Triple:
    level = rng.uniform(0.05, 0.15)
    return add_noise(raw, generator, level), add_noise(edit, generator, level), pointers


def _gain(raw: torch.Tensor, edit: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
          generator: torch.Generator) -> Triple:
    return scale_amplitude(raw, rng, 0.7, 1.3), scale_amplitude(edit, rng, 0.7, 1.3), pointers


def _channel_dropout(raw: torch.Tensor, edit: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
                     generator: torch.Generator) -> Triple:
    return channel_dropout(raw, generator, 0.1), channel_dropout(edit, generator, 0.1), pointers


def _spec_augment(raw: torch.Tensor, edit: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
                  generator: torch.Generator) -> Triple:
    def masked(mel: torch.Tensor) -> torch.Tensor:
        return time_mask(freq_mask(mel, rng, 2, 20), rng, 2, 50)

    return masked(raw), masked(edit), pointers


def _crop(raw: torch.Tensor, edit: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
          generator: torch.Generator) -> Triple:
    return random_crop(raw, edit, pointers, rng, 500, 5000)


def _chunk_shuffle(raw: torch.Tensor, edit: torch.Tensor, pointers: torch.Tensor, rng: random.Random,
                   generator: torch.Generator) -> Triple:
    return chunk_shuffle(raw, edit, pointers, rng, 1000, 1.0)


REFERENCE_AUGMENTATIONS = {
    "channel_dropout": _channel_dropout,
    "chunk_shuffle": _chunk_shuffle,
    "crop": _crop,
    "gain": _gain,
    "noise": _noise,
    "spec_augment": _spec_augment,
}
"""The plan's config block name → the reference applied to one sample with the plan's example
parameters (full.json's values): each spectral function once per mel, the pointer-aware ones once
per sample, always firing (``shuffle_prob=1``), as the benchmark forces our stages to fire."""


def reference_generators(seed: int) -> tuple[random.Random, torch.Generator]:
    """The explicit ``random.Random`` and ``torch.Generator`` the reference functions draw from."""
    return random.Random(seed), torch.Generator().manual_seed(seed)


def reference_augment(name: str, raw_mel: torch.Tensor, edit_mel: torch.Tensor, pointers: torch.Tensor,
                      rng: random.Random, generator: torch.Generator) -> Triple:
    """Apply the plan's reference for augmentation block ``name`` to one (raw, edit, pointers) triple.

    >>> import random, torch
    >>> raw = torch.ones(4, 30)
    >>> out = reference_augment("gain", raw, raw[:, :5], torch.arange(5), random.Random(0), torch.Generator())
    >>> [tuple(t.shape) for t in out]
    [(4, 30), (4, 5), (5,)]
    """
    if name not in REFERENCE_AUGMENTATIONS:
        raise ValueError(f"no reference for augmentation {name!r}; known: {', '.join(REFERENCE_AUGMENTATIONS)}")
    return REFERENCE_AUGMENTATIONS[name](raw_mel, edit_mel, pointers, rng, generator)
