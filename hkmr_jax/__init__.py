"""HKMR: Hierarchical Kinematic Human Mesh Recovery (ECCV 2020) in JAX / Flax NNX.

Importing the package loads nothing; import its modules by name. What lives where and
why: docs/design.md.
"""
