"""The one random generator behind randn, dropout and weight init.

A single seedable NumPy Generator, so `manual_seed(s)` makes a whole run
repeatable and its state can be saved in a checkpoint (it is a plain dict,
JSON-serialisable) and restored for an exact resume.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Reseed the generator used by randn, rand, randint, dropout and init."""
    global _generator
    _generator = np.random.default_rng(seed)


def rng():
    return _generator


def get_rng_state():
    return _generator.bit_generator.state


def set_rng_state(state):
    _generator.bit_generator.state = state
