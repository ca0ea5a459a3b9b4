"""Shared Keras 3 code of the mammo pipeline: encoders, weight resolution and networks."""
