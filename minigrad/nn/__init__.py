"""minigrad.nn, as torch.nn: modules (modules.py), gradient clipping (utils.py) and
reading and writing parameters as safetensors files (state.py)."""
from minigrad.nn.modules import (GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList,  # noqa: F401
                                 Parameter, ReLU, Sequential)
from minigrad.nn import state, utils  # noqa: F401
