"""viz.to_dot draws the graph (op names, shapes); detect_anomaly names the first op that made NaN/Inf."""
import shutil
import subprocess

import numpy as np
import pytest

import minigrad as mg
from conftest import REQUIRE_REFERENCE
from minigrad.viz import to_dot

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the NaNs are on purpose


def test_to_dot_names_ops_shapes_and_kinds():
    x = mg.ones(2, 3, requires_grad=True)
    w = mg.ones(3, 4, requires_grad=True)
    loss = ((x @ w).tanh() * 2).sum()
    dot = to_dot(loss)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for fragment in ["MatMul", "Tanh", "Mul", "Sum", "param 2x3 float32", "param 3x4 float32",
                     '"2x4 float32"', '"scalar float32"', "const scalar float32", "->"]:
        assert fragment in dot, fragment
    assert dot.count("shape=ellipse") == 4            # one node per op
    assert dot.count("->") == 4 + 6                   # op -> output, and 2+1+2+1 input edges


def test_graphviz_renders_the_dot_text():
    """Graphviz's own `dot` parses what to_dot writes (CI installs it; see .ci/run)."""
    if shutil.which("dot") is None:
        if REQUIRE_REFERENCE:
            pytest.fail("Graphviz's dot is required under MINIGRAD_REQUIRE_REFERENCE=1 (apt-get install graphviz)")
        pytest.skip("Graphviz's dot is not installed")
    x = mg.ones(2, 3, requires_grad=True)
    for name in ("minigrad", "graph", "my net"):
        done = subprocess.run(["dot", "-Tsvg"], input=to_dot((x.tanh() * x).sum(), name),
                              capture_output=True, text=True)
        assert done.returncode == 0 and "<svg" in done.stdout and "Tanh" in done.stdout, done.stderr


def test_to_dot_draws_a_shared_tensor_once():
    x = mg.ones(2, requires_grad=True)
    dot = to_dot(x * x + x)
    assert dot.count(f"t{id(x)} [") == 1


ANOMALIES = [  # (fn of x, x, op and pass that must be named)
    (lambda x: (x - 1).log(), [0.5, 2.0], "Log.forward"),
    (lambda x: x / (x - x), [1.0], "Div.forward"),
    (lambda x: x.exp() * 0 + (x * 1e30).exp(), [100.0], "Exp.forward"),
    (lambda x: x.sqrt(), [0.0, 4.0], "Sqrt.backward"),       # forward 0 is fine; d sqrt at 0 is inf
    (lambda x: x.abs().sqrt(), [0.0], "Sqrt.backward"),
]


@pytest.mark.parametrize("fn,values,where", ANOMALIES)
def test_detect_anomaly_names_the_op(fn, values, where):
    x = mg.Tensor(np.array(values, np.float64), requires_grad=True)
    with pytest.raises(mg.AnomalyError, match=where):
        with mg.detect_anomaly():
            fn(x).sum().backward()


def test_message_gives_the_kind_and_shape_and_state_is_restored():
    x = mg.Tensor(np.array([[0.5, 2.0]]), requires_grad=True)
    with pytest.raises(mg.AnomalyError, match=r"Log\.forward produced NaN \(output shape \(1, 2\)\)"):
        with mg.detect_anomaly():
            (x - 1).log()
    y = (x - 1).log()                                  # outside the context NaN passes silently
    assert np.isnan(y.data).any()


def test_no_anomaly_no_error():
    x = mg.randn(3, requires_grad=True)
    with mg.detect_anomaly():
        x.tanh().sum().backward()
    assert np.all(np.isfinite(x.grad))
