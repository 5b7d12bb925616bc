"""The shard index: ``index.json`` beside a shard set, each shard's sample count and frames.

Written by the packing tools, read by the reader to plan equal steps per rank without reading shards.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["INDEX_NAME", "read_index"]

INDEX_NAME = "index.json"


def read_index(directory: str) -> dict[str, dict[str, Any]]:
    """The per-shard entries of ``directory/index.json`` (``{}`` when there is none)."""
    path = os.path.join(directory, INDEX_NAME)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        index = json.load(f)
    if not isinstance(index, dict) or not isinstance(index.get("shards"), dict):
        raise ValueError(f"{path} is not a shard index (expected {{\"shards\": {{name: {{\"samples\": n}}}}}})")
    return index["shards"]
