"""Stages: the augmentations, pairing, shuffling and batching that a pipe chains."""
