"""nanoGPT's sampling loop runs on minigrad unchanged.

`generate` below is nanoGPT's GPT.generate (model.py) with `torch` replaced by `minigrad`
and `F` by `minigrad.functional`, nothing else: cropping to block_size, the forward, the
temperature, the top-k mask written by indexed assignment, softmax, multinomial and cat.
It runs on our GPT (whose forward returns (logits, loss)); its picks are checked against
the greedy path of gpt.sample, and its one-step distribution against gpt.sample's exact
sampling probabilities.
"""
import numpy as np
import pytest

import minigrad as torch        # the substitution under test: PyTorch code, minigrad underneath
from minigrad import functional as F
from gpt.model import GPT, GPTConfig
from gpt.sample import generate as our_generate, sampling_probs


class NanoGPT(GPT):
    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float('Inf')
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return NanoGPT(GPTConfig(vocab_size=23, block_size=8, n_layer=2, n_head=2, n_embd=16)).eval()


def test_runs_past_block_size_and_top_k_1_is_greedy(model):
    prompt = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    out = model.generate(prompt, max_new_tokens=10, top_k=1)      # 15 tokens > block_size 8: cropped
    assert out.shape == (2, 15) and out.dtype == np.int64 and not out.requires_grad
    assert out.tolist() == our_generate(model, prompt.data, 10, do_sample=False)


def test_repeatable_under_manual_seed(model):
    prompt = torch.tensor([[1, 2, 3]])
    torch.manual_seed(42)
    a = model.generate(prompt, 12, temperature=0.9, top_k=5).tolist()
    torch.manual_seed(42)
    assert model.generate(prompt, 12, temperature=0.9, top_k=5).tolist() == a
    torch.manual_seed(43)
    assert model.generate(prompt, 12, temperature=0.9, top_k=5).tolist() != a


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 4), (1.5, 2)])
def test_one_step_follows_the_exact_sampling_distribution(model, temperature, top_k):
    rows = 20_000
    prompt = np.array([[7, 3, 11, 0]])
    torch.manual_seed(1)
    nxt = model.generate(torch.tensor(np.repeat(prompt, rows, axis=0)), 1, temperature, top_k).data[:, -1]
    logits, _ = model(prompt)
    want = sampling_probs(logits.data[:, -1].astype(np.float64), temperature, top_k)[0]
    freq = np.bincount(nxt, minlength=want.size) / rows
    assert np.all(freq[want == 0] == 0)                              # outside the top-k: never
    se = np.sqrt(want * (1 - want) / rows)
    assert np.all(np.abs(freq - want) <= 5 * se + 1e-9), (freq, want)
