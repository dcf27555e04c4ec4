"""Batches for training and evaluation: random windows of the token ids, from seeded generators."""
import numpy as np


class BatchSampler:
    """Random contiguous windows: x = ids[i:i+T], y = ids[i+1:i+T+1].

    Training batches come from one seeded generator whose state goes into the
    checkpoint (exact resume). Evaluation batches come from a generator re-seeded
    at every evaluation, so every evaluation scores the same windows (comparable
    numbers) and never disturbs the training stream."""

    def __init__(self, splits, block_size, batch_size, seed):
        self.splits, self.block_size, self.batch_size, self.seed = splits, block_size, batch_size, seed
        self.rng = np.random.default_rng(seed)

    def _windows(self, ids, starts):
        T = self.block_size
        x = np.stack([np.asarray(ids[i:i + T], dtype=np.int64) for i in starts])
        y = np.stack([np.asarray(ids[i + 1:i + T + 1], dtype=np.int64) for i in starts])
        return x, y

    def batch(self, split="train", rng=None):
        ids = self.splits[split]
        starts = (rng or self.rng).integers(0, len(ids) - self.block_size, size=self.batch_size)
        return self._windows(ids, starts)

    def eval_batches(self, split, n):
        rng = np.random.default_rng([self.seed, 1, 0 if split == "train" else 1])
        return [self.batch(split, rng) for _ in range(n)]

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state
