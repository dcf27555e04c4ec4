"""Modules: objects that own Parameters and compose ops, with PyTorch's names (torch.nn).

A Module finds its parameters and submodules by looking at its attributes
(in the order they were set), so a model is plain Python classes with no
registration calls; `state_dict` names follow the attribute paths, as in
PyTorch (`h.0.attn.c_attn.weight`).
"""
from collections import OrderedDict

import numpy as np

from minigrad import functional as F
from minigrad.autograd import is_sparse
from minigrad.nn.flat import grad_home
from minigrad.random import rng
from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module trains: requires grad unless told otherwise."""

    __slots__ = ("_flat",)  # (FlatParameters, lo, hi) when it lives in a flat buffer (nn/flat.py)

    def __init__(self, data, requires_grad=True, dtype=None):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad, dtype)
        self._flat = None

    def _grad_buffer(self):
        return grad_home(self) if self.grad is None else None

    def _accumulate(self, g):
        home = self._grad_buffer()
        if home is None:
            return super()._accumulate(g)
        if is_sparse(g):  # the first gradient since zero_grad lands in the flat buffer ...
            home[...] = 0
            g.add_to(home)
        elif g is not home:  # ... unless a product was written there directly (Function.grad_buffer)
            np.copyto(home, g)
        self.grad = home


class Module:
    training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _children(self):
        """(name, value) of attributes that are Parameters or Modules, in definition order."""
        return [(k, v) for k, v in vars(self).items() if isinstance(v, (Parameter, Module))]

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._children():
            if isinstance(child, Module):
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def _named_tensors(self, prefix=""):
        """Every (name, Parameter), tied ones listed under each of their names."""
        for name, child in self._children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, Parameter):
                yield full, child
            else:
                yield from child._named_tensors(full)

    def named_parameters(self):
        """(name, Parameter) pairs, a tied parameter only once (under its first name)."""
        seen = set()
        for name, p in self._named_tensors():
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def to(self, dtype):
        """Cast every parameter in place (e.g. to float64 for gradcheck)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def state_dict(self):
        """name -> ndarray, sharing memory with the parameters (as PyTorch's shares storage)."""
        return OrderedDict((name, p.data) for name, p in self._named_tensors())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters in place. With strict, missing or unexpected
        names are an error; a shape mismatch always is. Returns (missing, unexpected)."""
        own = OrderedDict(self._named_tensors())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        values = {}
        for name, p in own.items():  # check every shape before copying any: no half-loaded model
            if name in state_dict:
                value = state_dict[name]
                values[name] = np.asarray(value.data if isinstance(value, Tensor) else value)
                if values[name].shape != p.shape:
                    raise ValueError(f"load_state_dict: {name} has shape {values[name].shape} in the "
                                     f"state dict but {p.shape} in the model")
        for name, value in values.items():
            own[name].data[...] = value
        return missing, unexpected

    def __repr__(self):
        inner = "".join(f"\n  ({k}): " + repr(v).replace("\n", "\n  ")
                        for k, v in vars(self).items() if isinstance(v, Module))
        return f"{type(self).__name__}({inner}\n)" if inner else f"{type(self).__name__}()"


class ModuleList(Module):
    """A list of modules whose parameters are named by index: `h.0`, `h.1`, ..."""

    def __init__(self, modules=()):
        self._list = list(modules)

    def _children(self):
        return [(str(i), m) for i, m in enumerate(self._list)]

    def __getitem__(self, i):
        return self._list[i]

    def __len__(self):
        return len(self._list)

    def __iter__(self):
        return iter(self._list)

    def append(self, module):
        self._list.append(module)
        return self

    def __repr__(self):
        inner = "".join(f"\n  ({i}): " + repr(m).replace("\n", "\n  ") for i, m in enumerate(self._list))
        return f"ModuleList({inner}\n)"


class Sequential(ModuleList):
    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for m in self._list:
            x = m(x)
        return x


def _uniform(bound, shape, dtype):
    return Parameter(rng().uniform(-bound, bound, size=shape).astype(dtype))


class Linear(Module):
    """y = x @ W^T + b, with W of shape (out_features, in_features) as in PyTorch."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        bound = 1 / np.sqrt(in_features)  # PyTorch's default init
        self.weight = _uniform(bound, (out_features, in_features), dtype)
        self.bias = _uniform(bound, (out_features,), dtype) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Embedding(Module):
    def __init__(self, num_embeddings, embedding_dim, dtype=np.float32):
        self.weight = Parameter(rng().standard_normal((num_embeddings, embedding_dim)).astype(dtype))

    def forward(self, ids):
        return F.embedding(ids, self.weight)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, bias=True, dtype=np.float32):
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class Dropout(Module):
    def __init__(self, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)


class GELU(Module):
    """Exact GELU by default, as torch.nn.GELU; approximate='tanh' for GPT-2's."""

    def __init__(self, approximate="none"):
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)


class ReLU(Module):
    def forward(self, x):
        return x.relu()
