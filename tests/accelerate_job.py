"""An accelerate run on 2 CPU processes (under torchrun) over the demo shards: the loader is NOT
given to ``prepare`` (the pipe splits shards across ranks itself); with ``--prepare-loader`` it is,
to show what that does. Each rank writes the keys it saw per epoch, with their augmentation
records, to OUT/rank-R.json."""

from __future__ import annotations

import json
import os
import sys

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from pipelines.build import build_pipe, load_config


def main(config_path: str, out: str, prepare_loader: bool) -> None:
    accelerator = Accelerator(cpu=True)
    pipe = build_pipe(load_config(config_path))
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    loader = DataLoader(pipe, batch_size=4, num_workers=1)  # a samples pipe, batched by the DataLoader
    if prepare_loader:
        loader = accelerator.prepare(loader)
    seen: dict[int, list[list[str]]] = {}
    for epoch in range(2):
        pipe.set_epoch(epoch)
        seen[epoch] = []
        for batch in loader:
            batch = batch.to(accelerator.device)
            seen[epoch] += [[key, json.dumps(meta["augmentations"], sort_keys=True)]
                            for key, meta in zip(batch.keys, batch.meta)]
            loss = model(batch.edit_mel.float().mean().reshape(1, 1)).sum()
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
    with open(os.path.join(out, f"rank-{accelerator.process_index}.json"), "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--prepare-loader" in sys.argv[3:])
