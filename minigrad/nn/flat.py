"""Parameters and their gradients in flat contiguous buffers.

    flat = FlatParameters(optimizer_params)   # after the model's dtype is final
    ... backward ...                          # gradients land in flat.grad
    comm.Allreduce(MPI.IN_PLACE, flat.grad)   # one buffer (or flat.buckets(n)), no copies
    optimizer.step()                          # AdamW: one kernel call per group instead of one per tensor

Every parameter's `.data` becomes a view of one slice of `flat.data`, and its
gradient is written into the matching slice of `flat.grad` the first time backward
reaches it after `zero_grad()` (`.grad` is then that view, and later gradients add
into it). `.grad` is still None for a parameter that got no gradient, as in
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
        for p, lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            self.data[lo:hi] = p.data.reshape(-1)
            p.data = self.data[lo:hi].reshape(p.shape)
            if p.grad is not None:
                self.grad[lo:hi] = p.grad.reshape(-1)
                p.grad = self.grad[lo:hi].reshape(p.shape)
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
            if p.grad is None or not _is_view(p.data, self.data, home) or not _is_view(p.grad, self.grad, home):
                return None
            lo, hi = (home[1] if lo is None else lo), home[2]
        return None if lo is None else (lo, hi)

    def fill_missing_grads(self):
        """Zero gradients for the parameters backward did not reach, so the whole of
        self.grad is this step's gradient (what an allreduce of the buffer needs)."""
        for p, lo, hi in zip(self.params, self.offsets[:-1], self.offsets[1:]):
            if p.grad is None:
                self.grad[lo:hi] = 0
                p.grad = self.grad[lo:hi].reshape(p.shape)

    def buckets(self, max_elements):
        """Consecutive slices of self.grad of at most max_elements each (views), in order."""
        step = max(1, int(max_elements))
        return [self.grad[i:i + step] for i in range(0, len(self.grad), step)]


def grad_home(p):
    """The slice of a flat gradient buffer p's gradient belongs in, or None."""
    home = getattr(p, "_flat", None)
    if home is None or not _is_view(p.data, home[0].data, home):
        return None
    return home[0].grad[home[1]:home[2]].reshape(p.shape)


def _is_view(array, buffer, home):
    return (array.base is buffer or array.base is not None and array.base.base is buffer) and \
        array.__array_interface__["data"][0] == buffer.__array_interface__["data"][0] + home[1] * buffer.itemsize


def same_memory(a, b):
    """True when a and b are the same elements of the same memory (views alike)."""
    return a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype and \
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
