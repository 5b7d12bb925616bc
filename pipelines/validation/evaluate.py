"""Scoring whole recordings: embeddings in, pointer metrics out, in bounded memory.

A scorer turns one sample into frame embeddings ``raw (T_raw, d)`` and ``edit (T_edit, d)`` and
a scale; scores are ``scale * edit @ raw.T``, taken ``chunk_frames`` edit frames at a time, so a
recording of 18,000 x 18,000 frames never holds more than ``chunk_frames x T_raw`` scores. Each
chunk's log-softmax gives the argmax prediction, the cross-entropy against the true pointers (the
validation loss) and the rows fed to the jump-penalised decoder (:class:`.metrics.JumpDecoder`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from streams import Sample

from .metrics import JumpDecoder, PointerCounts

__all__ = ["Embedder", "evaluate_samples", "model_embedder"]

Embedder = Callable[[Sample], tuple[torch.Tensor, torch.Tensor, float]]
"""``sample -> (raw (T_raw, d), edit (T_edit, d), scale)``, float32 on any device."""

DEFAULT_JUMP_PENALTY = 4.0
"""Nats of log-probability charged per jump by the decoding behind cut F1."""


def model_embedder(model: torch.nn.Module, device: torch.device) -> Embedder:
    """Embeddings of a :class:`~pipelines.model.PointerNet` (run without gradients).

    Encoding a whole raw recording is most of an evaluation's cost, so the embedder keeps the
    raw embedding of every raw tensor it has seen (by identity): conditions that perturb only the
    edit share the stored raw tensors and reuse them. Make a new embedder after the model changes.
    """
    raw_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def encode(mel: torch.Tensor) -> torch.Tensor:
        mel = mel.to(device=device, dtype=torch.float32).unsqueeze(0)
        with torch.no_grad():
            return model.encode(mel, torch.ones(1, mel.shape[-1], dtype=torch.bool, device=device))[0].float()

    def embed(sample: Sample) -> tuple[torch.Tensor, torch.Tensor, float]:
        held = raw_cache.get(id(sample.raw_mel))
        if held is None or held[0] is not sample.raw_mel:
            held = raw_cache[id(sample.raw_mel)] = (sample.raw_mel, encode(sample.raw_mel))
        return held[1], encode(sample.edit_mel), 1.0 / float(model.size.d) ** 0.5
    return embed


def evaluate_samples(embedder: Embedder, samples: Sequence[Sample], *, decode: bool = True,
                     jump_penalty: float = DEFAULT_JUMP_PENALTY, chunk_frames: int = 1024) -> dict[str, float]:
    """Metrics pooled over ``samples`` (see :mod:`.metrics`) plus ``loss``, the mean cross-entropy
    per edit frame. ``decode=False`` skips the decoding (no ``cut_f1``), which is the slow part."""
    counts = PointerCounts()
    loss_sum, frames = 0.0, 0
    with torch.no_grad():
        for sample in samples:
            raw, edit, scale = embedder(sample)
            pointers = sample.pointers.to(raw.device)
            decoder = JumpDecoder(jump_penalty) if decode else None
            predicted = []
            for start in range(0, edit.shape[0], chunk_frames):
                log_probs = torch.log_softmax(scale * (edit[start:start + chunk_frames] @ raw.T), dim=-1)
                target = pointers[start:start + chunk_frames]
                loss_sum += float(-log_probs.gather(1, target.unsqueeze(1)).sum())
                predicted.append(log_probs.argmax(-1).cpu())
                if decoder is not None:
                    decoder.feed(log_probs)
            frames += edit.shape[0]
            counts.add(torch.cat(predicted).numpy(), sample.pointers.numpy(),
                       decoder.finish() if decoder is not None else None)
    return {**counts.summary(), "loss": loss_sum / max(frames, 1)}
