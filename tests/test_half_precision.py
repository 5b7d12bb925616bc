"""``mel_dtype: "float16"`` end to end: from the shard to the batch, no mel-sized tensor of a wider
float type is ever made (reductions to a few values per mel bin are fine)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from pipelines import build_pipe, load_config
from streams import Batch

from .conftest import DEMO_URLS
from .test_full_pipeline import plan_config


class _WideFloats(TorchDispatchMode):
    """Records every op that outputs a float32/float64 tensor of more than ``limit`` values."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit
        self.wide: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.dtype in (torch.float32, torch.float64) \
                    and tensor.numel() > self.limit:
                self.wide.append((str(func), tuple(tensor.shape)))
        return out


def test_a_float16_pipe_makes_no_wide_float_pass():
    config = plan_config(concatenation=True, shuffle={"buffer_size": 4}, batching={"batch_size": 3})
    config["source"] = {"urls": DEMO_URLS.replace("{000000..000004}", "000000"), "mel_dtype": "float16"}
    for block in ("noise", "gain", "channel_dropout", "spec_augment", "crop", "chunk_shuffle", "concatenation"):
        config["augmentation"][block]["probability"] = 1.0
    config["augmentation"]["spec_augment"]["fill"] = "mean"
    config["augmentation"]["crop"].update(min_len=100, max_len=300)  # small samples: the mode slows every op
    pipe = build_pipe(load_config(config))
    next(iter(pipe))  # tables and caches made once per process are not per-sample passes
    with _WideFloats(limit=4096) as mode:
        batches = list(pipe)
    assert batches and all(isinstance(b, Batch) and b.raw_mel.dtype == torch.float16 for b in batches)
    assert mode.wide == []
