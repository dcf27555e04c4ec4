"""Sampler: reproducible seeds, greedy = argmax of full recompute, KV cache = no cache
(also past block_size), top-k/top-p never leave their allowed set, errors."""
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from gpt import generate, stream
from gpt.model import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=23, block_size=8, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture(scope="module")
def model():
    mg.manual_seed(11)
    m = GPT(CONFIG)
    for p in m.parameters():  # larger weights than GPT-2's init: peaked, varied predictions
        p.data *= 8
    return m


def FixedLogits(logits):
    """A real GPT whose next-token logits are `logits` whatever the context, so the allowed
    set is known: every block adds zero to the stream, ln_f's gain is 0 so its output is its
    bias, and that bias, padded, times the embedding [I | 0]^T gives the logits back."""
    V = len(logits)
    model = GPT(GPTConfig(vocab_size=V, block_size=4, n_layer=1, n_head=1, n_embd=V))
    for p in model.parameters():
        p.data[...] = 0.0
    model.transformer.wte.weight.data[...] = np.eye(V)
    model.transformer.ln_f.bias.data[...] = np.asarray(logits, dtype=np.float32)
    return model


def full_recompute_greedy(model, prompt, n):
    ids = list(prompt)
    with mg.no_grad():
        for _ in range(n):
            logits, _ = model(np.array([ids[-CONFIG.block_size:]]))
            ids.append(int(np.argmax(logits.data[0, -1])))
    return ids


def test_greedy_is_argmax_of_full_recompute_also_past_block_size(model):
    prompt = [1, 5, 7]
    expected = full_recompute_greedy(model, prompt, 20)  # 23 tokens > block_size 8
    assert generate(model, prompt, 20, do_sample=False) == [expected]
    assert generate(model, prompt, 20, temperature=0) == [expected]
    assert generate(model, prompt, 20, do_sample=False, use_cache=False) == [expected]
    assert len(set(expected[3:])) > 2  # a non-trivial continuation


def test_cached_and_uncached_sampling_agree(model):
    for seed in range(3):
        kw = dict(temperature=0.9, top_k=10, top_p=0.95, seed=seed, num_samples=2)
        assert generate(model, [4, 2], 15, **kw) == generate(model, [4, 2], 15, use_cache=False, **kw)


def test_fixed_seed_is_reproducible_and_leaves_global_rng_alone(model):
    state = mg.get_rng_state()
    a = generate(model, [3], 12, seed=123, num_samples=3)
    b = generate(model, [3], 12, seed=123, num_samples=3)
    assert a == b and len(a) == 3 and all(len(r) == 13 for r in a)
    assert len({tuple(r) for r in a}) > 1  # the samples differ from each other
    assert generate(model, [3], 12, seed=124, num_samples=3) != a
    assert mg.get_rng_state() == state


def test_stream_yields_what_generate_returns(model):
    tokens = list(stream(model, [1, 2], 10, seed=5, top_k=5))
    assert all(isinstance(t, int) for t in tokens)
    assert [1, 2] + tokens == generate(model, [1, 2], 10, seed=5, top_k=5)[0]


def test_batch_of_prompts_and_num_samples(model):
    rows = generate(model, np.array([[1, 2, 3], [4, 5, 6]]), 4, do_sample=False, num_samples=2)
    assert [r[:3] for r in rows] == [[1, 2, 3], [1, 2, 3], [4, 5, 6], [4, 5, 6]]
    assert rows[0] == rows[1] and rows[0] == full_recompute_greedy(model, [1, 2, 3], 4)
    assert rows[2] == full_recompute_greedy(model, [4, 5, 6], 4)
    assert generate(model, mg.tensor([[1, 2]]), 0) == [[1, 2]]


def test_eos_stops_each_row():
    stub = FixedLogits([0.0, 5.0, 0.0])  # greedy always says 1
    assert generate(stub, [0], 10, do_sample=False, eos_token_id=1) == [[0, 1]]
    assert list(stream(stub, [0], 10, do_sample=False, eos_token_id=1)) == [1]
    rows = generate(FixedLogits([1.0, 1.0, 1.0]), [0], 30, seed=0, eos_token_id=2, num_samples=4,
                    use_cache=False)
    for r in rows:
        assert 2 not in r[1:-1] and (r[-1] == 2 or len(r) == 31)
    rows = generate(FixedLogits([1.0, 1.0, 1.0]), [0], 30, seed=0, eos_token_id=[1, 2], num_samples=6,
                    use_cache=False)  # several stop ids, as transformers: any of them ends a row
    assert all(r[-1] in (1, 2) and not {1, 2} & set(r[1:-1]) for r in rows)
    assert list(stream(stub, [0], 10, do_sample=False, eos_token_id=[7, 1])) == [1]
    assert generate(stub, [0], 3, do_sample=False, eos_token_id=[]) == [[0, 1, 1, 1]]  # none
    with pytest.raises(ValueError, match="eos_token_id"):
        generate(stub, [0], 3, eos_token_id=[[1]])


def test_long_prompt_keeps_its_last_block_size_tokens(model):
    prompt = list(np.random.default_rng(0).integers(0, CONFIG.vocab_size, 20))
    with pytest.warns(UserWarning, match="only its last 8 tokens are used"):
        out = generate(model, prompt, 3, do_sample=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tail = generate(model, prompt[-8:], 3, do_sample=False)
    assert out[0][:20] == prompt and out[0][20:] == tail[0][8:]


def test_mode_and_grad_state_are_restored(model):
    model.train()
    it = stream(model, [1], 3, seed=0)
    next(it)
    assert model.training and mg.is_grad_enabled()  # a paused stream changes nothing
    list(it)
    model.eval()
    generate(model, [1], 2, seed=0)
    assert not model.training
    model.train()


@pytest.mark.parametrize("kw, message", [
    (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
    (dict(temperature=-0.5), "temperature must be a finite number >= 0"),
    (dict(temperature=float("nan")), "temperature must be a finite number >= 0"),
    (dict(top_k=0), "top_k must be an integer >= 1"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(num_samples=0), "num_samples must be an integer >= 1"),
    (dict(idx=[]), "prompt is empty"),
    (dict(idx=[1, 99]), r"prompt ids must be in \[0, vocab_size=23\)"),
    (dict(idx=[[[1]]]), "must be a list of ids or"),
])
def test_bad_arguments_are_clear_errors(model, kw, message):
    args = {"idx": [1, 2], "max_new_tokens": 3, **kw}
    with pytest.raises(ValueError, match=message):
        generate(model, **args)
    if "num_samples" not in kw:
        with pytest.raises(ValueError, match=message):
            stream(model, **args)  # checked at the call, not at the first next()


def allowed_tokens(logits, temperature, top_k, top_p):
    """The tokens top-k then top-p may emit, computed independently (ties included)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    keep = np.ones(len(z), dtype=bool)
    if top_k is not None and top_k < len(z):
        keep &= z >= np.sort(z)[-top_k]
    p = np.where(keep, np.exp(z - z.max()), 0.0)
    p /= p.sum()
    if top_p is not None:
        above = np.array([p[p > pi].sum() for pi in p])  # mass strictly more likely than each token
        keep &= above < top_p + 1e-9
    return set(np.flatnonzero(keep & (p > 0)))


@given(logits=st.lists(st.floats(-6, 6), min_size=2, max_size=30),
       temperature=st.floats(0.2, 3.0), top_k=st.one_of(st.none(), st.integers(1, 35)),
       top_p=st.one_of(st.none(), st.floats(0.01, 1.0)), seed=st.integers(0, 2**32 - 1))
def test_top_k_and_top_p_never_leave_the_allowed_set(logits, temperature, top_k, top_p, seed):
    stub = FixedLogits(logits)
    allowed = allowed_tokens(np.asarray(logits, dtype=np.float32), temperature, top_k, top_p)
    out = generate(stub, [0], 25, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                   use_cache=False)[0][1:]
    assert set(out) <= allowed, (sorted(set(out) - allowed), sorted(allowed))


def test_top_k_1_and_tiny_top_p_are_greedy(model):
    greedy = generate(model, [2, 9], 10, do_sample=False)
    assert generate(model, [2, 9], 10, top_k=1, seed=3) == greedy
    assert generate(model, [2, 9], 10, top_p=1e-6, seed=3) == greedy


def filtered_probs(logits, temperature, top_p):
    """softmax(logits / T), then the nucleus: the most likely tokens, in order, until the mass
    of those kept reaches top_p (worked by hand, not by the sampler's code)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    keep, mass = np.zeros(len(p), dtype=bool), 0.0
    for i in np.argsort(-p, kind="stable"):
        if mass >= top_p:
            break
        keep[i], mass = True, mass + p[i]
    q = np.where(keep, p, 0.0)
    return q / q.sum()


@pytest.mark.parametrize("temperature, top_p", [(0.7, 0.9), (1.6, 0.75), (1.0, 1.0)])
def test_sampled_frequencies_follow_temperature_and_the_exact_nucleus(temperature, top_p):
    """Over 6000 seeded draws, each token's frequency is within 0.02 of its probability, and
    a token the nucleus drops never appears (nor does a kept one go missing). Temperature
    multiplying instead of dividing, or top-p keeping one token too few or too many, moves
    some frequency by more than 0.05."""
    logits = [2.0, 1.4, 0.9, 0.0, -1.0]
    expected = filtered_probs(logits, temperature, top_p)
    out = generate(FixedLogits(logits), [0], 6000, temperature=temperature, top_p=top_p, seed=0,
                   use_cache=False)[0][1:]
    freq = np.bincount(out, minlength=len(logits)) / len(out)
    assert np.array_equal(freq > 0, expected > 0), (freq, expected)
    assert np.abs(freq - expected).max() < 0.02, (freq, expected)


class _Fixed:
    """A generator stand-in whose random() is given: the inverse-CDF draw's edge cases."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


def test_draws_by_inverse_cdf_and_never_a_zero_probability_token():
    """Worked by hand: cdf [0.5, 0.75, 0.75, 1.0, 1.0]; u = 0.6 -> 1, u = 0.75 -> 3 (past the
    zero-probability 2), u = 0.1 -> 0; and u * total at the last cumulative value (rounding can
    get there) gives the last nonzero token 3, not the zero-probability 4 after it."""
    from gpt.sample import choose
    logits = np.log(np.array([[0.5, 0.25, 0.0, 0.25, 0.0]] * 4))
    out = choose(logits, False, 1.0, None, None, [_Fixed(u) for u in (0.6, 0.75, 0.1, 1.0)])
    assert out.tolist() == [1, 3, 0, 3]


def test_a_batch_of_rows_draws_what_each_row_draws_alone():
    from gpt.sample import choose
    logits = np.random.default_rng(0).standard_normal((6, 50)) * 3
    together = choose(logits, False, 0.8, 20, 0.9, [np.random.default_rng(s) for s in range(6)])
    alone = [choose(logits[n:n + 1], False, 0.8, 20, 0.9, [np.random.default_rng(n)])[0] for n in range(6)]
    assert together.tolist() == alone
