"""The random generators behind randn, dropout, multinomial and weight init.

One default `Generator`, so `manual_seed(s)` makes a whole run repeatable, and
its state can be saved in a checkpoint (a plain dict, JSON-serialisable) and
restored for an exact resume. Like torch.Generator, a separate `Generator()`
can be passed as `generator=` to the random ops, leaving the default stream
alone. Draws come from NumPy's PCG64, so they cannot match PyTorch's numbers;
tests hold them to their distributions and to repeatability under a seed.
"""
import numpy as np


class Generator:
    """A seedable stream of random numbers: `Generator().manual_seed(42)`, as in PyTorch."""

    def __init__(self, device="cpu"):
        if str(device) != "cpu":
            raise ValueError(f"Generator: only device='cpu' exists here, got {device!r}")
        self._initial_seed = int(np.random.SeedSequence().entropy % 2 ** 63)
        self.rng = np.random.default_rng(self._initial_seed)

    def manual_seed(self, seed):
        """Reseed: an int, or anything np.random.default_rng takes (e.g. [seed, rank, step])."""
        self._initial_seed = int(seed) if isinstance(seed, (int, np.integer)) else seed
        self.rng = np.random.default_rng(self._initial_seed)
        return self

    def seed(self):
        """Reseed from fresh entropy and return the new seed."""
        return self.manual_seed(int(np.random.SeedSequence().entropy % 2 ** 63))._initial_seed

    def initial_seed(self):
        return self._initial_seed

    def get_state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state
        return self


default_generator = Generator()


def manual_seed(seed):
    """Reseed the default generator (used by randn, rand, randint, dropout, multinomial, init)."""
    return default_generator.manual_seed(seed)


def seed():
    return default_generator.seed()


def initial_seed():
    return default_generator.initial_seed()


def rng(generator=None):
    """The NumPy Generator to draw from: the given minigrad Generator's, or the default's."""
    if generator is None:
        return default_generator.rng
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a minigrad.Generator, got {type(generator).__name__}")
    return generator.rng


def get_rng_state():
    return default_generator.get_state()


def set_rng_state(state):
    default_generator.set_state(state)
