"""Reading: shard lists, epoch plans, tar records, decoding, sources and skip accounting."""
