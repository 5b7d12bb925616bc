"""A Lightning run on 2 CPU processes over the demo shards; each rank writes the keys and the
noise records it trained on per epoch to OUT/rank-R.json. Run by tests/test_lightning.py."""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

import lightning
import torch
from torch.utils.data import DataLoader

from pipelines.build import build_pipe, load_config
from pipelines.lightning import SetEpoch


class Probe(lightning.LightningModule):
    def __init__(self, out: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.out = out
        self.seen: dict[int, list] = defaultdict(list)

    def training_step(self, batch, index):
        for key, meta in zip(batch.keys, batch.meta):
            self.seen[self.current_epoch].append([key, json.dumps(meta["augmentations"], sort_keys=True)])
        return (self.weight * batch.edit_mel.float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_train_end(self):
        with open(os.path.join(self.out, f"rank-{self.global_rank}.json"), "w") as f:
            json.dump(self.seen, f)


def main(config_path: str, out: str, callback: bool = True) -> None:
    config = load_config(config_path)
    pipe = build_pipe(config)
    trainer = lightning.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                use_distributed_sampler=False, callbacks=[SetEpoch(pipe)] if callback else [])
    trainer.fit(Probe(out), DataLoader(pipe, batch_size=None, num_workers=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], callback="--no-callback" not in sys.argv[3:])
