"""gradcheck itself: it passes correct gradients and catches wrong ones, with a useful message."""
import re

import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F
from minigrad.autograd import Function


class BadSquare(Function):
    """x^2 with a deliberately wrong backward: x instead of 2x."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * self.x


class BadSecondInput(Function):
    """a * b whose gradient for b is off by a factor 1.5."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, 1.5 * g * self.a


def x64(*values):
    return mg.Tensor(np.array(values, dtype=np.float64), requires_grad=True)


CORRECT = [
    ("square", lambda x: x * x),
    ("tanh_sum", lambda x: x.tanh().sum()),
    ("softmax", lambda x: x.softmax()),
    ("two_outputs", lambda x: (x.exp(), x.sum())),
    ("with_constant", lambda x: x * mg.Tensor(np.array([1.0, 2.0, 3.0]))),
]


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
@pytest.mark.parametrize("fn", [c[1] for c in CORRECT], ids=[c[0] for c in CORRECT])
def test_passes_on_correct_gradients(fn, fast):
    assert mg.gradcheck(fn, (x64(0.5, -1.0, 2.0),), fast_mode=fast) is True


WRONG = [
    ("detach_half", lambda x: x * x.detach()),     # analytical x, true 2x
    ("bad_function", lambda x: BadSquare.apply(x)),
]


@pytest.mark.parametrize("fast", [False, True], ids=["full", "fast"])
@pytest.mark.parametrize("fn", [w[1] for w in WRONG], ids=[w[0] for w in WRONG])
def test_catches_wrong_gradients(fn, fast):
    with pytest.raises(mg.GradcheckError, match="input 0"):
        mg.gradcheck(fn, (x64(0.5, -3.0, 1.0),), fast_mode=fast)
    assert mg.gradcheck(fn, (x64(0.5, -3.0, 1.0),), fast_mode=fast, raise_exception=False) is False


def test_message_names_input_worst_element_and_both_values():
    # d/dx_i of x_i^2 is 2 x_i; BadSquare says x_i: the worst element is the largest |x|: x[1] = -3
    with pytest.raises(mg.GradcheckError) as info:
        mg.gradcheck(lambda x: BadSquare.apply(x), (x64(0.5, -3.0, 1.0),))
    msg = str(info.value)
    assert "input 0" in msg and "element (1,)" in msg, msg
    analytical, numerical = (float(v) for v in re.search(r"analytical (\S+) vs numerical (\S+)", msg).groups())
    assert analytical == pytest.approx(-3.0) and numerical == pytest.approx(-6.0, rel=1e-6)


def test_message_names_the_second_input_and_a_2d_element():
    a = mg.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    b = mg.Tensor(np.array([[0.5, 0.5], [0.5, 9.0]]), requires_grad=True)
    with pytest.raises(mg.GradcheckError, match=r"input 1 .*element \(1, 1\).*analytical 6 vs numerical (4|3\.9999)"):
        mg.gradcheck(lambda a, b: BadSecondInput.apply(a, b), (a, b))   # d(ab)/db = a = 4, bad: 1.5 * 4


def test_non_tensor_and_integer_inputs_pass_through():
    targets = np.array([1, 0, 2])
    logits = mg.Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert mg.gradcheck(lambda z, t, scale: F.cross_entropy(z * scale, t), (logits, targets, 2.0))


def test_float32_inputs_are_checked_in_float64_and_left_untouched():
    x = mg.tensor([0.5, 1.5], requires_grad=True)
    before = x.data.copy()
    assert mg.gradcheck(lambda x: (x * x * x).sum(), x)
    assert x.grad is None and x.dtype == np.float32
    np.testing.assert_array_equal(x.data, before)


def test_tolerances_are_honoured():
    # x * (1 + 1e-4) * x.detach(): analytical x (1+1e-4) vs numerical 2x (1+1e-4); with x = 1e-3 the
    # absolute error (1e-3) passes a loose atol and fails the default
    fn = lambda x: x * x.detach()
    assert mg.gradcheck(fn, x64(1e-3), atol=1e-2)
    assert not mg.gradcheck(fn, x64(1e-3), atol=1e-5, raise_exception=False)


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="no input requires grad"):
        mg.gradcheck(lambda x: x * 2, (mg.ones(2),))
