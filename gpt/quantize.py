"""Weight-only int8 for inference (`gpt sample --quantize int8`, `gpt eval --quantize int8`).

    model = checkpoint.load_model(path)
    quantize_int8(model)          # in place: every matmul weight becomes int8 + a scale per output

What is quantised: the four matrices of every block (attn.c_attn, attn.c_proj,
mlp.c_fc, mlp.c_proj) and the output head, each to int8 with one float32 scale per
output channel (minigrad/kernels/int8.py); they hold all but 0.1% of GPT-2's
weights that a token reads. What stays float32: the biases, the layer norms, the
position embeddings, and the token embedding as a lookup table.

The embedding/head choice: GPT-2 ties its output head to the token embedding (wte).
Producing each token's logits reads the whole head (for the 124M model 38.6M weights,
a third of what a token reads), so the head is quantised, one scale per vocabulary
row. The embedding, read one row per token, gains no speed from int8, so its lookup
keeps the float32 table, exact (with trained token rows of a LoRA adapter written in).
A LoRA layer is merged into its base weight before that weight is quantised, as
llama.cpp quantises a merged model. The tie is broken (the head is an int8 copy of wte),
which is harmless for a model that is not trained any more: a quantised model is for
inference only, and its forward pass runs under minigrad.no_grad().
"""
import numpy as np

from minigrad import is_grad_enabled, kernels, nn


class Int8Linear(nn.Module):
    """y = x @ W^T + b with W (out, in) stored as int8 rows and per-row float32 scales.

    Built from a float weight in (out, in) layout (transpose HF's Conv1D (in, out) first).
    `product(x)` works on arrays (gpt/inference.py), `forward(x)` on Tensors (GPT.forward,
    under no_grad)."""

    def __init__(self, weight_out_in, bias=None):
        self.weight_q, self.scale = kernels.quantize_rows(weight_out_in)  # (out, in) int8, (out,)
        self.bias = bias  # the float32 Parameter, or None

    @property
    def shape(self):
        return self.weight_q.shape

    def dequantized(self):
        """The float32 weight (out, in) that the int8 rows stand for."""
        return self.weight_q.astype(np.float32) * self.scale[:, None]

    def product(self, x, step=False):
        """x (..., in) float32 -> (..., out); step: a decoding step's batch-invariant kernel."""
        bias = None if self.bias is None else self.bias.data
        return kernels.linear_int8(x, self.weight_q, self.scale, bias, rowwise=step)

    def forward(self, x):
        if is_grad_enabled() and x.requires_grad:
            raise RuntimeError("Int8Linear: an int8-quantised model is for inference; run it under "
                               "minigrad.no_grad() (gpt sample and gpt eval do)")
        return x._make(self.product(x.data), None)


def quantize_int8(model):
    """Replace the model's matmul weights by Int8Linear layers, in place; returns the model.
    A model already quantised is left as it is."""
    for block in model.transformer.h:
        for owner, name in ((block.attn, "c_attn"), (block.attn, "c_proj"), (block.mlp, "c_fc"),
                            (block.mlp, "c_proj")):
            conv = getattr(owner, name)
            if hasattr(conv, "merged"):  # a LoRA layer (gpt/lora.py): its adapter folded in first
                conv = conv.merged()
            if not isinstance(conv, Int8Linear):  # Conv1D stores (in, out): rows must be outputs
                setattr(owner, name, Int8Linear(conv.weight.data.T, conv.bias))
    if not isinstance(model.lm_head, Int8Linear):
        model.lm_head = Int8Linear(model.transformer.wte.weight.data)  # (vocab, n_embd): rows are outputs
    model.eval()
    return model


def is_quantized(model):
    return isinstance(model.lm_head, Int8Linear)
