"""Parameters and their gradients in flat contiguous buffers.

    flat = FlatParameters(optimizer_params)   # after the model's dtype is final
    ... backward ...                          # gradients land in flat.grad
    comm.Allreduce(MPI.IN_PLACE, flat.grad)   # one buffer (or flat.buckets(n)), no copies
    optimizer.step()                          # AdamW: one kernel call per group instead of one per tensor

Every parameter's `.data` becomes a view of one slice of `flat.data`, and its
gradient is written into the matching slice of `flat.grad` the first time backward
reaches it after `zero_grad()` (`.grad` is then that view, and later gradients add
into it; a weight's product is written there directly, Function.grad_buffer). Each
parameter's two views are made once, and being those very objects is what "homed
in the buffer" means below. `.grad` is still None for a parameter that got no gradient, as in
PyTorch. Frozen parameters (a LoRA base) are simply left out. Parameters are laid
out in the order given, so each optimizer group, given in order, is one contiguous
span. A parameter whose `.data` is rebound afterwards (`Module.to`) leaves the
buffer; `contiguous_span` then says no and callers take the per-tensor path.
"""
import numpy as np


class FlatParameters:
    def __init__(self, params):
        self.params = list(dict.fromkeys(params))  # once each, in order (tied weights appear once)
        dtypes = {p.dtype for p in self.params}
        if len(dtypes) != 1:
            raise ValueError(f"FlatParameters: parameters must share one dtype, got {sorted(map(str, dtypes))}")
        sizes = [p.data.size for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        dtype = dtypes.pop()
        self.data = np.empty(int(self.offsets[-1]), dtype=dtype)
        self.grad = np.zeros(int(self.offsets[-1]), dtype=dtype)
        self._views = {}  # id(param) -> (its data view, its gradient view), made once
        for p, lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            self.data[lo:hi] = p.data.reshape(-1)
            views = self._views[id(p)] = (self.data[lo:hi].reshape(p.shape), self.grad[lo:hi].reshape(p.shape))
            p.data = views[0]
            if p.grad is not None:
                views[1][...] = p.grad
                p.grad = views[1]
            p._flat = (self, int(lo), int(hi))

    def __len__(self):
        return len(self.data)

    def contiguous_span(self, params):
        """(lo, hi) when params are, in order, the consecutive run data[lo:hi] of this buffer,
        still homed in it with their gradients in place; None otherwise."""
        lo = hi = None
        for p in params:
            home = getattr(p, "_flat", None)
            if home is None or home[0] is not self or (hi is not None and home[1] != hi):
                return None
            data_view, grad_view = self._views[id(p)]
            if p.data is not data_view or p.grad is not grad_view:
                return None
            lo, hi = (home[1] if lo is None else lo), home[2]
        return None if lo is None else (lo, hi)

    def fill_missing_grads(self):
        """Zero gradients for the parameters backward did not reach, so the whole of
        self.grad is this step's gradient (what an allreduce of the buffer needs)."""
        for p in self.params:
            if p.grad is None:
                p.grad = self._views[id(p)][1]
                p.grad[...] = 0

    def buckets(self, max_elements):
        """Consecutive slices of self.grad of at most max_elements each (views), in order."""
        step = max(1, int(max_elements))
        return [self.grad[i:i + step] for i in range(0, len(self.grad), step)]


def grad_home(p):
    """The slice of a flat gradient buffer p's gradient belongs in (the same array object each
    time), or None when p has none or its .data is no longer the buffer's view."""
    home = getattr(p, "_flat", None)
    if home is None:
        return None
    data_view, grad_view = home[0]._views[id(p)]
    return grad_view if p.data is data_view else None
