"""Random ops with PyTorch's signatures (multinomial, bernoulli, randint and the *_like
makers, randperm, normal_): they cannot match PyTorch's random stream, so each is held to
its distribution (frequencies within 5 standard errors of the exact probabilities, with
fixed seeds) and to repeatability under manual_seed or a Generator."""
import numpy as np
import pytest

import minigrad as mg

P = np.array([0.1, 0.2, 0.0, 0.3, 0.4])


def within(counts, probs, n):
    """Every frequency within 5 standard errors of its probability."""
    se = np.sqrt(probs * (1 - probs) / n) + 1e-12
    assert np.all(np.abs(counts / n - probs) <= 5 * se + 1e-12), (counts / n, probs)


def test_multinomial_with_replacement_follows_the_weights():
    mg.manual_seed(0)
    n = 200_000
    draws = mg.multinomial(mg.tensor(P * 7), n, replacement=True)   # weights need not sum to 1
    assert draws.shape == (n,) and draws.dtype == np.int64 and not draws.requires_grad
    counts = np.bincount(draws.data, minlength=5)
    assert counts[2] == 0                                            # weight 0: never drawn
    within(counts, P, n)


def test_multinomial_without_replacement_draws_in_order_of_a_sequential_urn():
    mg.manual_seed(1)
    rows = 100_000
    probs = mg.tensor(np.tile(P, (rows, 1)))
    draws = mg.multinomial(probs, 4).data                            # (rows, 4): every non-zero id once
    assert draws.shape == (rows, 4)
    assert (np.sort(draws, axis=1) == [0, 1, 3, 4]).all()
    within(np.bincount(draws[:, 0], minlength=5), P, rows)           # first draw ~ P
    first_is_4 = draws[:, 0] == 4                                    # second draw given the first: P / (1 - P[4])
    second = np.bincount(draws[first_is_4, 1], minlength=5)
    want = np.where(np.arange(5) == 4, 0.0, P / (1 - P[4]))
    within(second, want, int(first_is_4.sum()))


def test_multinomial_is_repeatable_under_a_seed_and_a_generator():
    probs = mg.tensor(np.tile(P, (3, 1)))
    mg.manual_seed(5)
    a = mg.multinomial(probs, 2).tolist()
    mg.manual_seed(5)
    assert mg.multinomial(probs, 2).tolist() == a
    g = mg.Generator().manual_seed(5)
    state = mg.get_rng_state()
    b = mg.multinomial(probs, 3, replacement=True, generator=g).tolist()
    assert mg.get_rng_state() == state                               # the default stream untouched
    assert mg.multinomial(probs, 3, replacement=True, generator=mg.Generator().manual_seed(5)).tolist() == b
    assert mg.Generator().manual_seed(7).initial_seed() == 7
    mg.manual_seed([7, 1, 30])                                       # a sequence seeds too (per rank, per step)
    c = mg.randn(4).tolist()
    mg.manual_seed([7, 1, 30])
    assert mg.randn(4).tolist() == c


def test_multinomial_rejects_bad_weights():
    for bad in [np.array([-0.1, 1.0]), np.array([np.nan, 1.0]), np.array([np.inf, 1.0]), np.zeros((2, 0))]:
        with pytest.raises(ValueError, match="multinomial"):
            mg.multinomial(mg.tensor(bad), 1)


def test_bernoulli_and_factories():
    mg.manual_seed(2)
    n = 100_000
    p = mg.full((n,), 0.3)
    b = mg.bernoulli(p)
    assert b.dtype == np.float32 and set(np.unique(b.data)) <= {0.0, 1.0}
    within(np.array([b.data.sum()]), np.array([0.3]), n)
    r = mg.randint(3, 7, (n,))
    assert r.dtype == np.int64 and r.data.min() == 3 and r.data.max() == 6
    within(np.bincount(r.data - 3), np.full(4, 0.25), n)
    assert mg.randint(5, size=(2, 3)).shape == (2, 3) and mg.randint(2, (4,)).data.max() <= 1
    like = mg.randint_like(mg.zeros(2, 2, dtype=mg.int32), 10)
    assert like.dtype == np.int32 and like.shape == (2, 2) and 0 <= like.data.min() and like.data.max() < 10
    assert mg.rand_like(mg.ones(3, dtype=mg.float64)).dtype == np.float64
    assert mg.randn_like(mg.ones(2, 5)).shape == (2, 5)
    assert sorted(mg.randperm(6).tolist()) == list(range(6)) and mg.randperm(3).dtype == np.int64
    w = mg.zeros(50_000, dtype=mg.float64)
    with mg.no_grad():
        w.normal_(1.0, 2.0)
    assert abs(w.data.mean() - 1.0) < 5 * 2 / np.sqrt(50_000) and abs(w.data.std() - 2.0) < 0.05
    w.uniform_(-1, 1)
    assert -1 <= w.data.min() and w.data.max() < 1 and w._version == 2


def test_random_makers_are_repeatable_and_generators_independent():
    for make in [lambda g: mg.randn(3, generator=g), lambda g: mg.rand(2, 2, generator=g),
                 lambda g: mg.randint(0, 100, (5,), generator=g), lambda g: mg.randperm(8, generator=g)]:
        assert make(mg.Generator().manual_seed(3)).tolist() == make(mg.Generator().manual_seed(3)).tolist()
        mg.manual_seed(9)
        a = make(None).tolist()
        mg.manual_seed(9)
        assert make(None).tolist() == a
