"""The Tensor: construction, dtypes, factories, no_grad, gradient accumulation, retain_graph, repr.
Every gradient here is checked against a hand-worked value written next to it."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F

F32, F64 = np.float32, np.float64


# ---- construction: (data, dtype argument, expected dtype, expected shape) -------------------------
CONSTRUCT = [
    (1.5, None, F32, ()),
    ([1.0, 2.0], None, F32, (2,)),                      # Python floats -> float32, as torch
    ([[1, 2], [3, 4]], None, np.int64, (2, 2)),         # Python ints -> int64
    ([True, False], None, np.bool_, (2,)),
    (np.ones(3, F64), None, F64, (3,)),                  # ndarrays keep their dtype
    (np.ones(3, F32), None, F32, (3,)),
    (np.float64(2.0), None, F64, ()),
    ([1.0, 2.0], "float64", F64, (2,)),
    ([1, 2], F32, F32, (2,)),
    (mg.ones(2, 3), None, F32, (2, 3)),
]


@pytest.mark.parametrize("data,dtype,want_dtype,want_shape", CONSTRUCT)
def test_construction(data, dtype, want_dtype, want_shape):
    t = mg.Tensor(data, dtype=dtype)
    assert (t.dtype, t.shape, t.ndim, t.grad, t.requires_grad) == (want_dtype, want_shape, len(want_shape), None, False)
    assert isinstance(t.data, np.ndarray) and t.numpy() is t.data


def test_tensor_copies_its_input():
    a = np.zeros(3, F32)
    mg.Tensor(a).data[0] = 5
    assert a[0] == 0


def test_attributes():
    t = mg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == F32 and t.requires_grad and t.is_leaf
    np.testing.assert_array_equal(t.T.data, [[1, 4], [2, 5], [3, 6]])
    assert mg.tensor(3.5).item() == 3.5 and isinstance(mg.tensor(3.5).item(), float)
    assert t.tolist() == [[1, 2, 3], [4, 5, 6]] and len(t) == 2 and t.numel() == 6
    assert bool(mg.tensor(2.0) > 1) and not mg.tensor(0.0)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)


def test_detach_shares_data_and_leaves_the_graph():
    x = mg.randn(3, requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and np.shares_memory(d.data, y.data)


# ---- factories: (call, dtype, shape) -------------------------------------------------------------------
FACTORIES = [
    (lambda: mg.zeros(2, 3), F32, (2, 3)),
    (lambda: mg.zeros((2, 3), dtype=F64), F64, (2, 3)),
    (lambda: mg.ones(4), F32, (4,)),
    (lambda: mg.ones(2, 2, dtype="float64"), F64, (2, 2)),
    (lambda: mg.randn(3, 2), F32, (3, 2)),
    (lambda: mg.randn(3, dtype=F64), F64, (3,)),
    (lambda: mg.rand(2), F32, (2,)),
    (lambda: mg.arange(5), np.int64, (5,)),
    (lambda: mg.arange(1, 7, 2), np.int64, (3,)),
    (lambda: mg.arange(0.0, 1.0, 0.25), F32, (4,)),       # float arguments: float32, as torch
    (lambda: mg.arange(3, dtype=F64), F64, (3,)),
    (lambda: mg.zeros_like(mg.ones(2, 3, dtype=F64)), F64, (2, 3)),
    (lambda: mg.ones_like(mg.ones(2)), F32, (2,)),
    (lambda: mg.full((2, 2), 7.0), F32, (2, 2)),
    (lambda: mg.tensor([1.0, 2.0], dtype=F64), F64, (2,)),
    (lambda: mg.randint(0, 5, (3,)), np.int64, (3,)),
]


@pytest.mark.parametrize("call,dtype,shape", FACTORIES)
def test_factories(call, dtype, shape):
    t = call()
    assert (t.dtype, t.shape) == (dtype, shape)


def test_factory_values_and_seed():
    np.testing.assert_array_equal(mg.arange(1, 7, 2).data, [1, 3, 5])
    np.testing.assert_array_equal(mg.zeros(2).data, [0, 0])
    np.testing.assert_array_equal(mg.full(2, 7.0).data, [7, 7])
    mg.manual_seed(3)
    a = mg.randn(4).data
    mg.manual_seed(3)
    np.testing.assert_array_equal(mg.randn(4).data, a)
    assert mg.ones(2, requires_grad=True).requires_grad


# ---- no silent upcasting: (expression on x, expected dtype) per input dtype --------------------------
SCALARS = [
    lambda x: x + 1, lambda x: 2.5 * x, lambda x: x / 3, lambda x: 1 - x, lambda x: x ** 2,
    lambda x: 2 ** x, lambda x: x * np.float64(2.0), lambda x: x + np.int64(1), lambda x: x.clip(0.1, 0.5),
    lambda x: x.masked_fill(x.data > 0, 1.5), lambda x: mg.where(x.data > 0, x, 0.5), lambda x: x.mean(),
    lambda x: x.var(), lambda x: F.dropout(x, 0.5), lambda x: x.softmax(),
    lambda x: F.scaled_dot_product_attention(*(x.reshape(1, 1, 2, 2),) * 3, is_causal=False),
    lambda x: F.layer_norm(x, 2), lambda x: x @ np.ones((2, 2), x.dtype), lambda x: mg.stack([x, x]),
]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("fn", SCALARS)
def test_no_silent_upcasting(fn, dtype):
    x = mg.Tensor([[0.5, -1.0], [2.0, 0.25]], dtype=dtype, requires_grad=True)
    y = fn(x)
    y.sum().backward()
    assert y.dtype == dtype and x.grad.dtype == dtype


def test_integer_tensors_and_python_floats():
    assert (mg.arange(3) + 1).dtype == np.int64
    assert (mg.arange(3) * 1.5).dtype == F32                  # as torch: int tensor * float -> default float
    assert (mg.ones(2).to(F64)).dtype == F64 and mg.ones(2).double().float().dtype == F32


def test_cast_gradient_returns_to_the_input_dtype():
    x = mg.ones(3, requires_grad=True)
    (x.double() * 3).sum().backward()              # d/dx sum(3x) = 3
    assert x.grad.dtype == F32
    np.testing.assert_array_equal(x.grad, [3, 3, 3])


# ---- no_grad ----------------------------------------------------------------------------------------------
def test_no_grad_context_and_decorator():
    x = mg.ones(2, requires_grad=True)
    with mg.no_grad():
        assert not mg.is_grad_enabled()
        y = x * 2
        with mg.no_grad():
            pass
        assert not mg.is_grad_enabled()            # nested exit restores the outer state
    assert mg.is_grad_enabled() and not y.requires_grad and y.grad_fn is None

    @mg.no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad and (x * 2).requires_grad


def test_no_grad_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with mg.no_grad():
            1 / 0
    assert mg.is_grad_enabled()


# ---- accumulation and graph lifetime -----------------------------------------------------------------------
def test_tensor_used_twice_accumulates():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()                   # d/dx (x^2 + x) = 2x + 1
    np.testing.assert_array_equal(x.grad, [3, 5, 7])


def test_gradients_accumulate_across_backward_calls():
    x = mg.tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()                       # 3 + 2x
    np.testing.assert_array_equal(x.grad, [5, -1])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [3, 3])


def test_retain_graph_allows_a_second_backward():
    x = mg.tensor([2.0], requires_grad=True)
    y = (x * x).sum()                              # dy/dx = 2x = 4
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [8])
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_with_explicit_grad_and_on_a_leaf():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(np.array([1.0, 10.0]))        # grad * 3
    np.testing.assert_array_equal(x.grad, [3, 30])
    w = mg.tensor(2.0, requires_grad=True)
    w.backward()
    assert w.grad == 1.0 and w.grad.dtype == F32


def test_retain_grad_keeps_an_intermediate_gradient():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = (x * 2).retain_grad()
    (h * h).sum().backward()                       # d/dh h^2 = 2h = 4x
    np.testing.assert_array_equal(h.grad, [4, 8])
    np.testing.assert_array_equal(x.grad, [8, 16])


def test_broadcast_gradient_is_reduced_to_the_input_shape():
    a = mg.ones(2, 1, 3, requires_grad=True)
    b = mg.ones(4, 1, requires_grad=True)
    (a * b).sum().backward()                       # each element of a meets 4 of b, each of b 2*3 of a
    np.testing.assert_array_equal(a.grad, np.full((2, 1, 3), 4))
    np.testing.assert_array_equal(b.grad, np.full((4, 1), 6))
    np.testing.assert_array_equal(mg.autograd.unbroadcast(np.ones((4, 3)), (1, 3)), [[4, 4, 4]])
    np.testing.assert_array_equal(mg.autograd.unbroadcast(np.ones((2, 3)), ()), 6)


def test_repeated_integer_indices_accumulate():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()               # row 0 picked three times
    np.testing.assert_array_equal(x.grad, [3, 0, 1])


def test_max_splits_gradient_between_ties():
    x = mg.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()                             # as torch.amax: evenly between the two maxima
    np.testing.assert_array_equal(x.grad, [0, 0.5, 0.5])


def test_comparisons_are_outside_the_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    for c in (x < 1.5, x <= 1, x > 1, x >= 2, x == 2, x != 2):
        assert c.dtype == np.bool_ and not c.requires_grad


def test_dropout_masks_and_scales():
    mg.manual_seed(0)
    x = mg.ones(1000, requires_grad=True)
    y = F.dropout(x, 0.25)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)       # inverted dropout
    assert 0.65 < kept.mean() < 0.85
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)          # the same mask scales the gradient
    assert F.dropout(x, 0.25, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0)


# ---- repr --------------------------------------------------------------------------------------------------
REPRS = [
    (lambda: mg.tensor([1.0, 2.0]), ["tensor(", "[1. 2.]", "dtype=float32"], ["requires_grad", "grad_fn"]),
    (lambda: mg.tensor([1.0], requires_grad=True), ["requires_grad=True"], ["grad_fn"]),
    (lambda: mg.tensor([1.0], requires_grad=True) * 2, ["grad_fn=<Mul>"], ["requires_grad=True"]),
    (lambda: mg.arange(3, dtype=F64), ["dtype=float64", "[0. 1. 2.]"], []),
]


@pytest.mark.parametrize("make,present,absent", REPRS)
def test_repr(make, present, absent):
    text = repr(make())
    assert all(p in text for p in present) and not any(a in text for a in absent), text
