"""Datasets, augmentation, synthetic occlusions and the input pipeline."""
