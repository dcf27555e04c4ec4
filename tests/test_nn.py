"""minigrad.nn: the Module API (names, state_dict, strictness, train/eval) and the layers.
Layer outputs and gradients are checked against NumPy formulas and gradcheck."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F, nn


class Block(nn.Module):
    def __init__(self, d):
        self.ln = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return x + self.drop(self.fc(self.ln(x)).gelu())


class TinyLM(nn.Module):
    """Embedding tied to the output head, as GPT-2."""

    def __init__(self, vocab=5, d=4, n=2):
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList([Block(d) for _ in range(n)])
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight          # tied

    def forward(self, ids):
        x = self.wte(ids)
        for block in self.h:
            x = block(x)
        return self.head(x)


BLOCK_NAMES = ["ln.weight", "ln.bias", "fc.weight", "fc.bias"]
NAMES = ["wte.weight"] + [f"h.{i}.{n}" for i in range(2) for n in BLOCK_NAMES]


def test_named_parameters_follow_attribute_paths_and_count_tied_once():
    model = TinyLM()
    assert [n for n, _ in model.named_parameters()] == NAMES
    assert len(model.parameters()) == len(NAMES)
    assert list(model.state_dict()) == NAMES + ["head.weight"]      # state_dict lists every name, as torch
    assert model.state_dict()["head.weight"] is model.state_dict()["wte.weight"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())


def test_state_dict_round_trip_reproduces_outputs():
    mg.manual_seed(0)
    a, b = TinyLM().eval(), TinyLM().eval()
    ids = np.array([[0, 3, 4], [1, 1, 2]])
    assert not np.allclose(a(ids).data, b(ids).data)
    snapshot = {k: v.copy() for k, v in a.state_dict().items()}
    assert b.load_state_dict(snapshot) == ([], [])
    np.testing.assert_array_equal(a(ids).data, b(ids).data)
    assert b.head.weight is b.wte.weight                           # still tied after loading


def test_load_state_dict_copies_in_place():
    model = nn.Linear(2, 3)
    weight = model.weight
    model.load_state_dict({"weight": np.ones((3, 2)), "bias": np.zeros(3)})
    assert model.weight is weight and np.all(weight.data == 1) and weight.dtype == np.float32


def test_load_state_dict_strictness():
    model = nn.Linear(2, 3)
    with pytest.raises(KeyError, match=r"missing keys \['bias'\], unexpected keys \['other'\]"):
        model.load_state_dict({"weight": np.ones((3, 2)), "other": np.ones(1)})
    assert np.all(model.weight.data != 1)                            # nothing loaded on error
    missing, unexpected = model.load_state_dict({"weight": np.ones((3, 2)), "other": np.ones(1)}, strict=False)
    assert (missing, unexpected) == (["bias"], ["other"]) and np.all(model.weight.data == 1)
    with pytest.raises(ValueError, match=r"bias has shape \(4,\) in the state dict but \(3,\) in the model"):
        model.load_state_dict({"weight": np.full((3, 2), 2.0), "bias": np.ones(4)}, strict=False)
    assert np.all(model.weight.data == 1)                            # weight not half-loaded either


def test_train_eval_toggle_dropout_everywhere():
    mg.manual_seed(0)
    model = TinyLM()
    ids = np.array([[0, 1, 2, 3]])
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    np.testing.assert_array_equal(model(ids).data, model(ids).data)   # eval: deterministic
    model.train()
    assert model.h[1].drop.training
    assert not np.array_equal(model(ids).data, model(ids).data)       # train: fresh masks


def test_zero_grad_and_call():
    model = TinyLM()
    F.cross_entropy(model(np.array([[0, 1, 2]])).reshape(3, 5), np.array([1, 2, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_tied_weight_gets_both_gradients():
    model = TinyLM(n=0)
    ids = np.array([0, 2])
    model(ids).sum().backward()
    # out = E[ids] @ E^T: d/dE = (sum over rows of out-grad = 1) -> ones(2, 5) @ E[ids] for the head
    # plus scatter of ones(2, 5) @ E into the looked-up rows for the embedding
    E = model.wte.weight.data
    want = np.ones((5, 2)) @ E[ids]
    np.add.at(want, ids, np.ones((2, 5)) @ E)
    np.testing.assert_allclose(model.wte.weight.grad, want, rtol=1e-6)


def test_linear_matches_formula_and_gradcheck():
    layer = nn.Linear(3, 2).double()
    x = mg.randn(4, 3, dtype=np.float64, requires_grad=True)
    np.testing.assert_allclose(layer(x).data, x.data @ layer.weight.data.T + layer.bias.data, rtol=1e-12)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    assert mg.gradcheck(lambda x, w, b: F.matmul(x, w.T) + b, (x, layer.weight, layer.bias))
    assert nn.Linear(3, 2, bias=False).bias is None and len(nn.Linear(3, 2, bias=False).parameters()) == 1


def test_layer_norm_module_defaults_and_formula():
    ln = nn.LayerNorm(4)
    assert ln.eps == 1e-5 and np.all(ln.weight.data == 1) and np.all(ln.bias.data == 0)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(ln(mg.Tensor(x)).data, want, rtol=1e-5, atol=1e-6)
    assert ln(mg.Tensor(x)).dtype == np.float32


def test_embedding_module_and_dropout_module():
    emb = nn.Embedding(4, 3)
    assert emb.weight.shape == (4, 3) and emb(mg.tensor([[3, 0]])).shape == (1, 2, 3)
    np.testing.assert_array_equal(emb(np.array([2, 2])).data, emb.weight.data[[2, 2]])
    drop = nn.Dropout(0.3)
    x = mg.ones(10)
    assert drop.eval()(x) is x


def test_module_to_dtype_and_parameter_construction():
    model = TinyLM().double()
    assert all(p.dtype == np.float64 for p in model.parameters())
    p = nn.Parameter(mg.ones(2))
    assert p.requires_grad and isinstance(p, mg.Tensor)
    assert not nn.Parameter(np.ones(2), requires_grad=False).requires_grad


def test_plain_tensor_attributes_are_not_parameters():
    class WithBuffer(nn.Module):
        def __init__(self):
            self.mask = mg.ones(3)
            self.w = nn.Parameter(np.ones(3))
    assert [n for n, _ in WithBuffer().named_parameters()] == ["w"]
