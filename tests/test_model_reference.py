"""GPT against PyTorch: with identical weights, transformers.GPT2LMHeadModel (eager
attention, gelu_new, no dropout) must give our logits, loss and the gradient of
every parameter, and ten AdamW steps must move both the same way (llm.c's test)."""
import numpy as np
import pytest

import minigrad as mg
from conftest import require
from gpt.model import GPT, GPTConfig
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import get_lr

CONFIGS = [
    GPTConfig(vocab_size=67, block_size=24, n_layer=2, n_head=4, n_embd=32),
    GPTConfig(vocab_size=50, block_size=16, n_layer=3, n_head=1, n_embd=16),
    GPTConfig(vocab_size=101, block_size=32, n_layer=1, n_head=8, n_embd=64),
]
# float64 should agree to rounding; float32 to what float32 accumulation allows
TOL = {np.float64: 1e-9, np.float32: 1e-4}


def torch_twin(model):
    """A transformers GPT-2 holding our weights: the state dicts match name for name,
    layout for layout (both store Conv1D weights (in, out)), so nothing is transposed."""
    torch = require("torch")
    transformers = require("transformers")
    c = model.config
    cfg = transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
        n_head=c.n_head, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, layer_norm_epsilon=1e-5, bos_token_id=None, eos_token_id=None,
        attn_implementation="eager")
    twin = transformers.GPT2LMHeadModel(cfg).to(torch.float64 if model.dtype == np.float64 else torch.float32)
    ours = model.state_dict()
    theirs = twin.state_dict()
    assert set(ours) == set(theirs), set(ours) ^ set(theirs)
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.items()})
    assert twin.lm_head.weight is twin.transformer.wte.weight or \
        twin.lm_head.weight.data_ptr() == twin.transformer.wte.weight.data_ptr()
    return twin.eval()


def batch(config, B=3, T=None, seed=0):
    gen = np.random.default_rng(seed)
    T = T or config.block_size
    idx = gen.integers(0, config.vocab_size, (B, T))
    targets = gen.integers(0, config.vocab_size, (B, T))
    targets[0, :3] = -100  # ignored positions must be skipped the same way
    return idx, targets


def torch_loss(torch, twin, idx, targets):
    logits = twin(torch.from_numpy(idx)).logits
    V = logits.shape[-1]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(targets).reshape(-1),
                                             ignore_index=-100)
    return logits, loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ci", range(len(CONFIGS)))
def test_logits_loss_and_every_gradient_match_pytorch(ci, dtype, report=None):
    torch = require("torch")
    mg.manual_seed(ci)
    model = GPT(CONFIGS[ci]).to(dtype)
    twin = torch_twin(model)
    idx, targets = batch(model.config, seed=ci)

    logits, loss = model(idx, targets)
    loss.backward()
    ref_logits, ref_loss = torch_loss(torch, twin, idx, targets)
    ref_loss.backward()

    tol = TOL[dtype]
    diffs = {"logits": np.abs(logits.data - ref_logits.detach().numpy()).max(),
             "loss": abs(loss.item() - ref_loss.item())}
    ref_params = dict(twin.named_parameters())
    named = list(model.named_parameters())
    assert len(named) == len(ref_params)
    for name, p in named:
        ref = ref_params[name].grad.numpy()
        scale = max(1.0, np.abs(ref).max())
        diffs[name] = np.abs(p.grad - ref).max() / scale
    grads = {k: v for k, v in diffs.items() if k not in ("logits", "loss")}
    worst = max(grads, key=grads.get)
    print(f"config {ci} {np.dtype(dtype).name}: logits {diffs['logits']:.2e} loss {diffs['loss']:.2e} "
          f"worst grad (relative to max(1, |grad|)) {grads[worst]:.2e} in {worst}")
    assert diffs["logits"] < tol and diffs["loss"] < tol, diffs
    bad = {k: v for k, v in diffs.items() if v >= tol}
    assert not bad, bad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ten_adamw_steps_match_torch_adamw(dtype):
    """Same init, same batches, same schedule (warmup + cosine, per-group lr set each step),
    same clipping and decay groups: losses and parameters stay equal for ten steps."""
    torch = require("torch")
    mg.manual_seed(7)
    model = GPT(CONFIGS[0]).to(dtype)
    twin = torch_twin(model)
    twin.train()  # no dropout either way; only the mode differs
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), eps=1e-8)
    decay = [p for n, p in twin.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in twin.named_parameters() if p.ndim < 2]
    ref_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    losses, ref_losses = [], []
    idx, targets = batch(model.config, B=2, seed=100)  # one batch, so the loss must fall
    for step in range(10):
        lr = get_lr(step, 1e-3, 1e-4, 3, 10)
        for group, ref_group in zip(opt.param_groups, ref_opt.param_groups):
            group["lr"] = ref_group["lr"] = lr

        opt.zero_grad()
        _, loss = model(idx, targets)
        loss.backward()
        norm = clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())

        ref_opt.zero_grad()
        _, ref_loss = torch_loss(torch, twin, idx, targets)
        ref_loss.backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0).item()
        ref_opt.step()
        ref_losses.append(ref_loss.item())
        assert abs(norm - ref_norm) <= 1e-5 * max(1, ref_norm), (step, norm, ref_norm)

    ref_params = dict(twin.named_parameters())
    param_diff = max(np.abs(p.data - ref_params[n].detach().numpy()).max() for n, p in model.named_parameters())
    loss_diff = np.abs(np.array(losses) - np.array(ref_losses)).max()
    print(f"AdamW x10 {np.dtype(dtype).name}: max |loss diff| {loss_diff:.2e}, max |param diff| {param_diff:.2e}")
    assert losses[-1] < losses[0]
    assert loss_diff < 1e-5 and param_diff < 1e-5


def test_dropout_path_matches_torch_in_eval_and_is_stochastic_in_training():
    """With dropout > 0 the model in eval mode is the plain model; in training it is random
    (attention-probability dropout goes through the composed-attention path)."""
    torch = require("torch")
    mg.manual_seed(3)
    cfg = CONFIGS[0]
    model = GPT(GPTConfig(**{**cfg.to_dict(), "dropout": 0.2})).double()
    twin = torch_twin(model)
    idx, targets = batch(cfg, seed=5)
    model.eval()
    logits, _ = model(idx)
    assert np.abs(logits.data - torch_loss(torch, twin, idx, targets)[0].detach().numpy()).max() < 1e-9
    model.train()
    a, _ = model(idx)
    b, _ = model(idx)
    assert not np.allclose(a.data, b.data)
