"""Flax NNX modules: speech encoders, image encoders, pooling, dual encoder."""
