"""Datasets, augmentation, synthetic occlusions and the input pipeline.

Import the modules by name (`from hkmr_jax.data import pipeline`); the example format
they share: docs/CONTRACT_data.md.
"""
