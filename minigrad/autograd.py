"""The graph and reverse-mode differentiation.

Every op is a `Function` whose `forward` works on plain ndarrays and whose
`backward` returns one gradient per input. `backward()` walks the recorded
graph from the output to the leaves in reverse topological order, summing
gradients where a tensor is used more than once. The ops live in ops.py and
fused.py; this file only knows the protocol they follow.

It does not import the Tensor class (tensor.py imports this file): a tensor here
is anything with `data`, `requires_grad`, `_ctx` (the Function that made it),
`_retain`, `_accumulate` and `_grad_buffer`, and an op's output is wrapped by its
first input's `_make`.

In-place writes (inplace.py does them; this file keeps their books):
- Every write bumps the version of the memory it lands in. Versions belong to the
  storage, the root ndarray that owns the memory, so every view of it (and a
  detach()ed alias) shares one counter, as in PyTorch (`t._version`).
- Each recorded node notes `_epoch`, the count of writes so far. At backward, a node
  whose epoch is older than the last write has its saved tensors checked
  (`saves_inputs`, `saves_output`): one written since raises, naming the op.
- A write that autograd must see (a tensor that requires grad, or a value that does)
  gives the written tensor a new node (`rebind`); the node before it stays reachable
  as `_previous`, so ops recorded before the write still reach the old version.
  If the tensor is a view (`_base`, set by view ops), its bases take new nodes too.
  A view taken before a write into its memory through another tensor is stale:
  using it in the graph raises at backward (PyTorch would regenerate it).
A training step makes no writes, so all of this costs one integer compare per node.
"""
import weakref

import numpy as np

_state = {"grad_enabled": True, "anomaly": False,
          "writes": 0,         # in-place writes so far: the clock of `_epoch` and write stamps
          "graph_write": 0}    # stamp of the last write autograd had to see (0: none yet)


class no_grad:
    """Context manager (and decorator) that stops recording the graph, as torch.no_grad."""

    def __enter__(self):
        self._prev = _state["grad_enabled"]
        _state["grad_enabled"] = False

    def __exit__(self, *exc):
        _state["grad_enabled"] = self._prev

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapped


def is_grad_enabled():
    return _state["grad_enabled"]


class detect_anomaly:
    """Within this context the first op whose forward or backward yields NaN/Inf raises,
    naming the op, instead of letting the NaN spread silently through the graph."""

    def __enter__(self):
        self._prev = _state["anomaly"]
        _state["anomaly"] = True

    def __exit__(self, *exc):
        _state["anomaly"] = self._prev


class AnomalyError(FloatingPointError):
    pass


def _check_finite(array, op_name, where):
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = "NaN" if np.isnan(array).any() else "Inf"
        raise AnomalyError(f"detect_anomaly: {op_name}.{where} produced {bad} (output shape {array.shape})")


def is_sparse(grad):
    """True for a sparse gradient: not an array but an object with shape, dtype, dense() and
    add_to(array) (an embedding's rows, fused.RowGradient), added into a dense one in place."""
    return hasattr(grad, "add_to")


def unbroadcast(grad, shape):
    """Sum a gradient back down to the shape of the input it flows into.

    The one place broadcasting is undone, so op backwards carry no shape logic.
    Example: unbroadcast(np.ones((4, 3)), (1, 3)) -> [[4., 4., 4.]]
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class Function:
    """One node of the graph. Subclasses define `forward(*arrays, **kwargs) -> array`
    and `backward(grad) -> one gradient per input (None where not needed)`.
    What backward needs is stored on `self` during forward, never elsewhere.
    `saves_inputs` (indices; None for all) and `saves_output` say which of those arrays
    are an input's or the output's memory, for the in-place write check; `view` marks
    ops whose output may share its first input's memory."""

    saves_inputs = None
    saves_output = False
    view = False

    def __init__(self, *inputs):
        self.inputs = inputs
        self.needs_input_grad = tuple(t.requires_grad for t in inputs)

    def grad_buffer(self, i):
        """An array (input i's shape and dtype) that backward may write input i's gradient into,
        or None. Offered for a leaf that has a slot of its own (a flat parameter buffer,
        minigrad/nn/flat.py) and no gradient yet, when it is this node's input once: a product
        written there needs no copy into the slot (backward adds a leaf's gradients into its
        .grad as they arrive, so the slot is never offered twice)."""
        inp = self.inputs[i]
        if inp._ctx is not None or not inp.requires_grad or sum(t is inp for t in self.inputs) != 1:
            return None
        return inp._grad_buffer()

    def forward(self, *arrays, **kwargs):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def saved_inputs(self):
        """Indices of the inputs whose memory backward will read (checked after in-place writes)."""
        return range(len(self.inputs)) if self.saves_inputs is None else self.saves_inputs

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run forward on the inputs' arrays; record the node if any input needs grad."""
        ctx = cls(*inputs)
        out = ctx.forward(*[t.data for t in inputs], **kwargs)
        if out.__class__ is not np.ndarray:  # NumPy gives scalars for 0-d results: keep arrays
            out = np.asarray(out)
        if _state["anomaly"]:
            _check_finite(out, cls.__name__, "forward")
        track = _state["grad_enabled"] and any(ctx.needs_input_grad)
        if track:
            ctx._epoch = _state["writes"]
        t = inputs[0]._make(out, ctx if track else None)
        if cls.view:  # (the tensor viewed, writes so far); whether out is really a view is asked on a write
            t._base = (inputs[0], _state["writes"])
        return t


def backward(root, grad, retain_graph=False):
    """Push `grad` (d out / d root) back to every leaf that requires grad. A leaf's gradients
    are added into its .grad as they arrive (as torch's AccumulateGrad); an inner tensor's are
    summed until every consumer has sent its own, then passed on."""
    grads = {id(root): grad}  # id(tensor) -> gradient flowing into it so far
    for t in reversed(_topo_order(root)):
        g = grads.pop(id(t), None)
        if g is None:
            continue
        if t._ctx is None or t._retain:
            t._accumulate(g)
        if t._ctx is not None:
            _backprop_node(t._ctx, g, grads, retain_graph)


def _topo_order(root):
    """Tensors in an order where each comes after everything it was computed from."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:  # iterative DFS: deep graphs must not hit Python's recursion limit
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        # Mark a tensor when it is expanded, not when pushed: a tensor reached by two paths
        # (a residual x + f(x)) must come after ALL its consumers in the reversed order.
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is None:
            continue
        if ctx.inputs is None:
            raise RuntimeError("backward: trying to go through the graph a second time; its buffers "
                               "were freed (pass retain_graph=True to the first backward)")
        if ctx._epoch != _state["writes"] or _state["graph_write"]:
            _check_writes(t, ctx)
        for p in ctx.inputs:
            if p.requires_grad and id(p) not in seen:
                stack.append((p, False))
    return order


def _backprop_node(ctx, g, grads, retain_graph):
    in_grads = ctx.backward(g)
    if not isinstance(in_grads, tuple):
        in_grads = (in_grads,)
    for inp, ig, need in zip(ctx.inputs, in_grads, ctx.needs_input_grad):
        if not need or ig is None:
            continue
        if is_sparse(ig) and (inp._ctx is not None or ig.dtype != inp.dtype or _state["anomaly"]):
            ig = ig.dense()  # a sparse gradient is only ever added into a leaf's own .grad
        if not is_sparse(ig):
            ig = unbroadcast(np.asarray(ig), inp.shape)
            if ig.dtype != inp.dtype:
                ig = ig.astype(inp.dtype)
            if _state["anomaly"]:
                _check_finite(ig, type(ctx).__name__, "backward")
        if inp._ctx is None:  # a leaf: into its .grad now (a product may already be in its slot)
            inp._accumulate(ig)
            continue
        prev = grads.get(id(inp))
        grads[id(inp)] = ig if prev is None else prev + ig
    if not retain_graph:
        ctx.__dict__.clear()  # drop saved arrays and the links to inputs: the graph is freed
        ctx.inputs = None


# ---- in-place writes: versions of storages, and what the graph must know of them -------------

class _Storage:
    """The books of one root ndarray: how often it was written (`version`), the stamp of
    the last write and of the last write autograd saw (0: none)."""
    __slots__ = ("version", "stamp", "graph_stamp", "ref")


_storages = {}  # id(root ndarray) -> _Storage, dropped when the root is freed


def _root(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _storage(array, create=False):
    root = _root(array)
    st = _storages.get(id(root))
    if st is None and create:
        st = _storages[id(root)] = _Storage()
        st.version = st.stamp = st.graph_stamp = 0
        key = id(root)
        st.ref = weakref.ref(root, lambda _, key=key: _storages.pop(key, None))
    return st


def version(array):
    """How many in-place writes the memory of `array` has had (PyTorch's `t._version`)."""
    st = _storage(array)
    return 0 if st is None else st.version


def record_write(array, differentiable):
    """Count a write into `array`'s memory; returns its stamp."""
    _state["writes"] += 1
    stamp = _state["writes"]
    st = _storage(array, create=True)
    st.version += 1
    st.stamp = stamp
    if differentiable:
        st.graph_stamp = _state["graph_write"] = stamp
    return stamp


def rebind(x, new, previous, stamp):
    """After a write, tensor `x` is the value `new` computed (from `previous`, a fresh tensor
    that stands for x before the write): x takes new's node, which remembers `previous`
    for the ops recorded before the write."""
    ctx = new._ctx
    if ctx is not None:
        ctx._epoch, ctx._written, ctx._previous = stamp, stamp, previous
    x._ctx, x.requires_grad = ctx, new.requires_grad


def _incarnation(t, epoch):
    """The version of tensor `t` that an op recorded at `epoch` took as input."""
    while t._ctx is not None and getattr(t._ctx, "_written", 0) > epoch:
        t = t._ctx._previous
    return t


def _check_writes(t, ctx):
    """Before backward runs through ctx (which made t): point its inputs at the versions it
    saw, and refuse saved tensors written since and views gone stale. (A view op that had to
    copy is harmless here: its output has a storage of its own.)"""
    epoch = ctx._epoch
    if epoch != _state["writes"]:
        ctx.inputs = tuple(_incarnation(p, epoch) for p in ctx.inputs)
        for i in ctx.saved_inputs():
            _check_saved(ctx, ctx.inputs[i], f"input {i}", epoch)
        if ctx.saves_output:
            _check_saved(ctx, t, "output", epoch)
    for p in ctx.inputs:
        _check_fresh(ctx, p, epoch)


def _check_saved(ctx, t, what, epoch):
    st = _storage(t.data)
    if st is not None and st.stamp > epoch:
        name = type(ctx).__name__
        raise RuntimeError(
            f"backward: {name} needs its {what} (shape {t.shape}, {t.dtype}) as it was when {name} ran, "
            f"but it has been modified in place since (its memory is now at version {st.version}). "
            f"Write into a clone() instead, or make the write before {name}.")


def _check_fresh(ctx, p, epoch):
    base = getattr(p, "_base", None)
    if base is None:
        return
    st = _storage(p.data)
    own = getattr(p._ctx, "_written", 0) if p._ctx is not None else 0
    # a write's own node reads its inputs before the write: it has seen only the writes before it
    seen = epoch - 1 if getattr(ctx, "_written", 0) == epoch else epoch
    if st is not None and base[1] < st.graph_stamp <= seen and own < st.graph_stamp:
        raise RuntimeError(
            f"backward: {type(ctx).__name__} used a view (shape {p.shape}) taken before its memory was "
            f"written in place through another tensor; its graph does not know of that write. Take "
            f"the view again after the write (minigrad does not regenerate stale views as PyTorch does).")
