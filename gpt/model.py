"""GPT-2 on minigrad: config, modules, and the forward pass (with an optional KV cache).

Parameter names and layouts follow Hugging Face's GPT2LMHeadModel exactly
(`transformer.h.0.attn.c_attn.weight` stored (in, out) like HF's Conv1D), so
`model.state_dict()` maps one-to-one onto theirs and checkpoints move both
ways through gpt/hf.py without any transposes.
"""
from dataclasses import asdict, dataclass

import minigrad  # noqa: F401  (before NumPy: it sets OpenBLAS's thread spin time, see minigrad/__init__.py)
import numpy as np

from minigrad import Tensor, functional as F, nn
from minigrad.autograd import is_grad_enabled
from minigrad.random import rng
from gpt.decode import last_logits

# Architectures by name; each preset overrides GPTConfig's defaults.
PRESETS = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64),        # unit tests, smoke runs
    "small": dict(n_layer=4, n_head=4, n_embd=128, block_size=256),     # CPU experiments
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),                    # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),            # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),             # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),                # 1558M
}


@dataclass
class GPTConfig:
    vocab_size: int = 50257   # GPT-2's BPE: 50,000 merges + 256 bytes + <|endoftext|>
    block_size: int = 1024    # longest context; the number of learned positions
    n_layer: int = 12         # transformer blocks
    n_head: int = 12          # attention heads per block; head_dim = n_embd // n_head
    n_embd: int = 768         # width of the residual stream
    dropout: float = 0.0      # embedding, attention-probability and residual dropout (0 for pretraining)
    bias: bool = True         # biases in Linear and LayerNorm, as GPT-2; False is nanoGPT's leaner variant

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by "
                             f"GPTConfig.n_head ({self.n_head})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")

    @classmethod
    def preset(cls, name, **overrides):
        """A named architecture, e.g. GPTConfig.preset("gpt2") or preset("tiny", vocab_size=65)."""
        if name not in PRESETS:
            raise ValueError(f"unknown GPT preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self):
        return asdict(self)


class Conv1D(nn.Module):
    """y = x @ W + b with W of shape (in, out): HF GPT-2's layout (not nn.Linear's (out, in))."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        self.weight = nn.Parameter(np.zeros((in_features, out_features), dtype=dtype))
        self.bias = nn.Parameter(np.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x):
        y = x @ self.weight  # (..., in) @ (in, out) -> (..., out)
        return y + self.bias if self.bias is not None else y


class KVCache:
    """Keys and values of the positions seen so far, per layer, for incremental decoding.

    Buffers of shape (B, H, block_size, D) are allocated once; each forward writes
    its new positions at [length, length + T) and attends to the filled prefix.
    Inference only: the cache holds plain arrays, outside the autograd graph.
    """

    def __init__(self, config, batch_size, dtype=np.float32):
        head_dim = config.n_embd // config.n_head
        shape = (batch_size, config.n_head, config.block_size, head_dim)
        self.k = [np.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [np.zeros(shape, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0  # positions filled, i.e. the position of the next token
        self.capacity = config.block_size

    def append(self, layer, k, v):
        """Store this step's k, v arrays (B, H, T, D) for `layer`; return views of all the
        keys and values so far (B, H, Tk, D), Tk = length + T. length moves on only when
        the whole forward is done (the caller adds T), so every layer writes at the same place."""
        start, end = self.length, self.length + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def update(self, layer, k, v):
        """append() for Tensors, as the Tensor forward pass uses it."""
        keys, values = self.append(layer, k.data, v.data)
        return Tensor(keys), Tensor(values)  # (B, H, Tk, D)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, dtype):
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd, config.bias, dtype)  # q, k, v at once
        self.c_proj = Conv1D(config.n_embd, config.n_embd, config.bias, dtype)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, kv_cache=None, layer=0):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        if kv_cache is None and not (self.training and self.dropout > 0):
            # training/eval without cache: one fused node from the packed q|k|v to merged heads
            y = F.causal_self_attention(self.c_attn(x), H)  # (B, T, 3C) -> (B, T, C)
            return self.resid_dropout(self.c_proj(y))  # (B, T, C)
        q, k, v = self.c_attn(x).split(C, axis=2)  # 3 x (B, T, C)
        q = q.reshape(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.reshape(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        v = v.reshape(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # (B, H, Tk, D), Tk = past + T
        if self.training and self.dropout > 0:
            y = self._attention_with_dropout(q, k, v)  # (B, H, T, D)
        else:
            # fused kernel: queries are the last T of the Tk positions (bottom-right causal mask)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, H, D) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)

    def _attention_with_dropout(self, q, k, v):
        """Attention from primitives, because the fused kernel has no dropout on the
        attention probabilities; used only when training with dropout > 0."""
        Tq, Tk, D = q.shape[2], k.shape[2], q.shape[3]
        att = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(D))  # (B, H, Tq, Tk)
        hidden = np.arange(Tk)[None, :] > np.arange(Tq)[:, None] + (Tk - Tq)  # (Tq, Tk) future keys
        att = att.masked_fill(hidden, -np.inf).softmax(-1)  # (B, H, Tq, Tk)
        return self.attn_dropout(att) @ v  # (B, H, Tq, D)


class MLP(nn.Module):
    def __init__(self, config, dtype):
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd, config.bias, dtype)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd, config.bias, dtype)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = F.gelu(self.c_fc(x))  # (B, T, 4C), tanh-approximate GELU as GPT-2 ("gelu_new")
        return self.dropout(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config, dtype):
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias, dtype=dtype)
        self.attn = CausalSelfAttention(config, dtype)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias, dtype=dtype)
        self.mlp = MLP(config, dtype)

    def forward(self, x, kv_cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), kv_cache, layer)  # (B, T, C)
        return x + self.mlp(self.ln_2(x))  # (B, T, C)


class Transformer(nn.Module):
    """The `transformer.` prefix of HF's names: embeddings, blocks and the final LayerNorm."""

    def __init__(self, config, dtype):
        self.wte = nn.Embedding(config.vocab_size, config.n_embd, dtype=dtype)
        self.wpe = nn.Embedding(config.block_size, config.n_embd, dtype=dtype)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config, dtype) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias, dtype=dtype)


class LMHead(nn.Module):
    """logits = x @ W^T with W the token embedding itself (weight tying, as GPT-2): the
    same Parameter object, so it is trained once and listed once by parameters()."""

    def __init__(self, weight):
        self.weight = weight

    def forward(self, x):
        return x @ self.weight.T  # (B, T, C) @ (C, V) -> (B, T, V)


class GPT(nn.Module):
    def __init__(self, config, dtype=np.float32, init_weights=True):
        """init_weights=False leaves the parameters zero, for a loader that fills every one
        (drawing GPT-2 124M's random init takes seconds)."""
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = Transformer(config, dtype)
        self.lm_head = LMHead(self.transformer.wte.weight)  # tied: lm_head.weight IS wte.weight
        if init_weights:
            self._init_weights()

    def _init_weights(self):
        """GPT-2's init: N(0, 0.02) weights and embeddings, zero biases, LayerNorm 1/0.
        Each block adds two residual projections (attn.c_proj, mlp.c_proj) to the stream,
        so theirs get std 0.02/sqrt(2*n_layer) to keep the stream's variance from growing
        with depth (GPT-2 paper, section 2.3)."""
        residual_std = 0.02 / np.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                p.data[...] = rng().normal(0.0, residual_std, p.shape)
            elif name.endswith(".weight") and ".ln_" not in name:
                p.data[...] = rng().normal(0.0, 0.02, p.shape)
            elif name.endswith(".weight"):
                p.data[...] = 1.0  # LayerNorm gain
            else:
                p.data[...] = 0.0  # every bias

    @property
    def dtype(self):
        return self.transformer.wte.weight.dtype

    def forward(self, idx, targets=None, kv_cache=None):
        """idx (B, T) int token ids -> (logits (B, T, V), loss or None).

        loss is the mean cross-entropy over targets (B, T), skipping -100. With a
        KVCache (inference, under no_grad) idx holds only the new tokens, at positions
        kv_cache.length onwards, and their keys and values are appended to the cache.
        """
        idx = self._check_ids(idx, "idx")
        B, T = idx.shape
        past = 0 if kv_cache is None else kv_cache.length
        if kv_cache is not None and is_grad_enabled():
            raise RuntimeError("GPT.forward: a kv_cache is for inference; call it under minigrad.no_grad()")
        if past + T > self.config.block_size:
            raise ValueError(f"GPT.forward: sequence length {past + T} (past {past} + new {T}) exceeds "
                             f"block_size {self.config.block_size}")
        pos = np.arange(past, past + T)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C) + (T, C)
        x = self.transformer.drop(x)  # (B, T, C)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, kv_cache, layer)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.length += T
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        targets = self._check_ids(targets, "targets", ignore_index=-100)
        if targets.shape != idx.shape:
            raise ValueError(f"GPT.forward: targets shape {targets.shape} != idx shape {idx.shape}")
        V = logits.shape[-1]
        loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), ignore_index=-100)  # (B*T, V)
        return logits, loss

    def decode(self, idx, kv_cache=None):
        """Inference: logits of the last position (B, V) as a plain array, the same numbers
        as forward(idx, kv_cache=...)[0][:, -1] without building a graph (gpt/decode.py);
        what generate() calls for every token."""
        return last_logits(self, self._check_ids(idx, "idx"), kv_cache)

    def _check_ids(self, ids, what, ignore_index=None):
        ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if ids.ndim != 2:
            raise ValueError(f"GPT.forward: {what} must have shape (B, T), got ndim {ids.ndim} "
                             f"(shape {ids.shape})")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"GPT.forward: {what} must hold integer token ids, got dtype {ids.dtype}")
        if ids.shape[1] == 0:
            raise ValueError(f"GPT.forward: {what} is empty (shape {ids.shape})")
        V = self.config.vocab_size
        bad = ((ids < 0) | (ids >= V)) & (ids != ignore_index if ignore_index is not None else True)
        if bad.any():
            b, t = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"GPT.forward: {what}[{b}, {t}] = {int(ids[b, t])} is out of range "
                             f"[0, vocab_size={V})")
        return ids.astype(np.int64, copy=False)

    # ---- sizes, for benchmarks ------------------------------------------------------

    def num_params(self, non_embedding=True):
        """Parameter count, the tied wte/lm_head matrix once. non_embedding=True leaves out
        the position embeddings (as nanoGPT): the token embedding stays in, because tied to
        lm_head it does real matmul work."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, seq_len=None):
        """Training FLOPs (forward + backward) per token, the PaLM paper's estimate that
        nanoGPT uses: 6N for the weight matmuls (2 forward, 4 backward per weight per token)
        plus 12*L*H*Q*T for attention (QK^T and AV; Q = head_dim, T = context length,
        block_size by default). N = num_params(non_embedding=True). Ignores the causal mask."""
        cfg = self.config
        T = cfg.block_size if seq_len is None else seq_len
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.n_head * (cfg.n_embd // cfg.n_head) * T

    # ---- Hugging Face checkpoints (gpt/hf.py) -----------------------------------------

    def save_pretrained(self, directory):
        """Write config.json + model.safetensors that transformers.GPT2LMHeadModel loads."""
        from gpt import hf
        return hf.save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory, dtype=np.float32):
        """Load a GPT-2 directory written by save_pretrained here or by transformers."""
        from gpt import hf
        return hf.from_pretrained(cls, directory, dtype=dtype)
