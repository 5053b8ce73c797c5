"""HKMR: Hierarchical Kinematic Human Mesh Recovery (ECCV 2020) in JAX / Flax NNX."""
