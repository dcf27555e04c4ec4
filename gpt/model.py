"""GPT-2 on minigrad: its config, its modules, and the training forward pass.

Parameter names and layouts follow Hugging Face's GPT2LMHeadModel exactly
(`transformer.h.0.attn.c_attn.weight` stored (in, out) like HF's Conv1D), so
`model.state_dict()` maps one-to-one onto theirs and checkpoints move both
ways through gpt/hf/ without any transposes. Sampling runs the same weights on
bare arrays with a key-value cache: gpt/inference.py.
"""
from dataclasses import asdict, dataclass, field

import numpy as np

from minigrad import Tensor, functional as F, nn
from minigrad.optim import AdamW
from minigrad.random import rng

from gpt import hf
from gpt.errors import ConfigError


def _opt(default, help):
    """A config field whose help text feeds the `gpt train` flag generated from it."""
    return field(default=default, metadata={"help": help})


@dataclass
class GPTConfig:
    """The architecture, defined once: `gpt train` makes a flag of each field but vocab_size
    (which the tokenizer decides); its defaults there come from the run presets."""
    vocab_size: int = _opt(50257, "tokens in the vocabulary (GPT-2's: 50,000 merges + 256 bytes + <|endoftext|>)")
    block_size: int = _opt(1024, "context length in tokens: the number of learned positions")
    n_layer: int = _opt(12, "transformer blocks")
    n_head: int = _opt(12, "attention heads per block (must divide n_embd)")
    n_embd: int = _opt(768, "width of the residual stream")
    dropout: float = _opt(0.0, "embedding, attention and residual dropout (0 for pretraining and small data)")
    bias: bool = _opt(True, "biases in Linear and LayerNorm layers, as GPT-2 (False: nanoGPT's leaner variant)")

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ConfigError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by "
                              f"GPTConfig.n_head ({self.n_head})")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        return self

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


class CausalSelfAttention(nn.Module):
    def __init__(self, config, dtype):
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd, config.bias, dtype)  # q, k, v at once
        self.c_proj = Conv1D(config.n_embd, config.n_embd, config.bias, dtype)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C): q | k | v
        if not (self.training and self.dropout > 0):
            # fused: one graph node from the packed q|k|v to the merged heads (fused.PackedCausalAttention)
            y = F.causal_self_attention(qkv, H)  # (B, T, 3C) -> (B, T, C)
        else:
            # composed of primitives, because the fused kernel has no dropout on the probabilities
            q, k, v = qkv.split(C, axis=2)  # 3 x (B, T, C)
            q = q.reshape(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
            k = k.reshape(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
            v = v.reshape(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
            att = (q @ k.transpose(-2, -1)) * (1.0 / np.sqrt(D))  # (B, H, T, T)
            future = np.triu(np.ones((T, T), dtype=bool), k=1)  # (T, T) keys after each query
            att = self.attn_dropout(att.masked_fill(future, -np.inf).softmax(-1))  # (B, H, T, T)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config, dtype):
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd, config.bias, dtype)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd, config.bias, dtype)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = F.gelu(self.c_fc(x), approximate="tanh")  # (B, T, 4C), GPT-2's GELU ("gelu_new")
        return self.dropout(self.c_proj(h))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, config, dtype):
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias, dtype=dtype)
        self.attn = CausalSelfAttention(config, dtype)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=1e-5, bias=config.bias, dtype=dtype)
        self.mlp = MLP(config, dtype)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
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
        return F.linear(x, self.weight)  # (B, T, C) @ W^T (C, V) -> (B, T, V)


class GPT(nn.Module):
    config_class = GPTConfig  # as transformers: what from_pretrained builds from config.json

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

    def forward(self, idx, targets=None):
        """idx (B, T) int token ids -> (logits (B, T, V), loss or None).

        loss is the mean cross-entropy over targets (B, T), skipping -100.
        """
        idx = self.check_ids(idx, "idx")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"GPT.forward: sequence length {T} exceeds block_size {self.config.block_size}")
        x = self.transformer.wte(idx) + self.transformer.wpe(np.arange(T))  # (B, T, C) + (T, C)
        x = self.transformer.drop(x)  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)  # (B, T, C)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        if targets is None:
            return logits, None
        targets = self.check_ids(targets, "targets", ignore_index=-100)
        if targets.shape != idx.shape:
            raise ValueError(f"GPT.forward: targets shape {targets.shape} != idx shape {idx.shape}")
        V = logits.shape[-1]
        loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T), ignore_index=-100)  # (B*T, V)
        return logits, loss

    def check_ids(self, ids, what, ignore_index=None):
        """ids as an int64 array (B, T), each in [0, vocab_size) (or ignore_index); a clear error
        naming the first bad one otherwise."""
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

    def resize_token_embeddings(self, new_num_tokens):
        """Grow the token embedding, and with it the tied lm_head, to new_num_tokens rows (as
        transformers' method of that name), e.g. for special tokens a tokenizer just gained.
        New rows start as the mean of the existing ones: a new token's logit is then the mean
        logit of the vocabulary, so the model's predictions barely move until it learns the
        token (a random row could give it a large logit anywhere). Never shrinks."""
        wte = self.transformer.wte.weight
        old = wte.shape[0]
        if new_num_tokens < old:
            raise ConfigError(f"resize_token_embeddings: {new_num_tokens} rows would drop trained "
                              f"rows of the {old} the model has")
        if new_num_tokens > old:
            mean = wte.data.astype(np.float64).mean(axis=0).astype(wte.dtype)  # (C,)
            wte.data = np.concatenate([wte.data, np.tile(mean, (new_num_tokens - old, 1))])  # (V', C)
            wte.grad = None
            self.config.vocab_size = new_num_tokens  # lm_head is the same Parameter: it grew too
        return self.transformer.wte

    # ---- training and Hugging Face folders ------------------------------------------------

    def configure_optimizers(self, weight_decay, lr, betas, eps=1e-8):
        """AdamW over nanoGPT's two groups: decay every tensor with ndim >= 2 (matmul weights,
        embeddings), not biases or LayerNorm gains, whose decay only hurts. Frozen parameters
        (requires_grad False) are left out."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def save_pretrained(self, directory):
        """Write config.json + model.safetensors that transformers.GPT2LMHeadModel loads."""
        return hf.save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory, dtype=np.float32):
        """Load a GPT-2 folder written by save_pretrained here or by transformers."""
        return hf.from_pretrained(cls, directory, dtype=dtype)
