"""Movement and indexing primitives: no arithmetic, only where the numbers go.

The companions of ops.py, in the same form: forward and backward side by side,
the derivative in the comment above each class. Reshape, permute, expand and
basic indexing return NumPy views of their input (`view = True`), so a write
into one lands in the input's memory, as in PyTorch. `IndexPut` and `ViewPut`
are how in-place writes (inplace.py) enter the graph. Index translation (the
order PyTorch gives mixed int and tensor indices) is in shape.py.
"""
import numpy as np

from minigrad.autograd import Function


# d reshape(x) = reshape back(d out)
class Reshape(Function):
    saves_inputs, view = (), True

    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


# d permute(x) = inverse permute(d out)
class Permute(Function):
    saves_inputs, view = (), True

    def forward(self, x, dims):
        self.inverse = tuple(np.argsort(dims))
        return x.transpose(dims)

    def backward(self, g):
        return g.transpose(self.inverse)


# d expand(x) = d out, summed back over the expanded dims (by autograd.unbroadcast)
class Expand(Function):
    saves_inputs, view = (), True

    def forward(self, x, shape):
        return np.broadcast_to(x, shape)

    def backward(self, g):
        return g


# d x[i] = scatter-add of d out into zeros (repeated indices accumulate)
class Index(Function):
    saves_inputs, view = (), True

    def forward(self, x, index):
        self.shape, self.index = x.shape, index
        self.fancy = has_array(index)
        # a trailing ... keeps an all-int index a 0-d view of x rather than a copied scalar
        return x[index] if self.fancy or Ellipsis in index else x[index + (Ellipsis,)]

    def backward(self, g):
        dx = np.zeros(self.shape, dtype=g.dtype)
        if self.fancy:
            np.add.at(dx, self.index, g)
        else:
            dx[self.index] = g  # basic slicing never repeats an element
        return dx


def has_array(index):
    return any(isinstance(p, np.ndarray) for p in index)


def region(a, steps):
    """a indexed by all steps but the last (views: basic indices), and the last step."""
    for step in steps[:-1]:
        a = a[step]
    return a, steps[-1]


# out = x with x[index] = value;  dx = d out with the written elements zeroed,  dvalue = d out[index]
class IndexPut(Function):
    saves_inputs = ()

    def forward(self, x, value, steps):
        self.steps = steps
        out = x.copy()
        target, last = region(out, steps)
        target[last] = value
        return out

    def backward(self, g):
        dx = None
        if self.needs_input_grad[0]:
            dx = np.array(g)
            target, last = region(dx, self.steps)
            target[last] = 0
        target, last = region(g, self.steps)
        return dx, np.asarray(target[last])


# out = base after a write through one of its views (the memory holds it already);
# dbase = d out with the view's elements zeroed,  dview = d out at the view's elements
class ViewPut(Function):
    saves_inputs = ()

    def forward(self, base, view, positions):
        self.positions, self.view_shape = positions, view.shape
        return base

    def backward(self, g):
        flat = np.ravel(g)
        dview = flat[self.positions].reshape(self.view_shape)
        dbase = flat.copy()
        dbase[self.positions] = 0
        return dbase.reshape(g.shape), dview


def element_positions(base, view):
    """Flat (C-order) positions in `base` of each element of `view`, a strided view of
    base's memory, found by address. Example: for base (2, 3) and view base[:, 1],
    [1, 4]."""
    def addresses(a):
        addr = np.full((1,) * a.ndim, a.__array_interface__["data"][0], dtype=np.int64)
        for d, (n, stride) in enumerate(zip(a.shape, a.strides)):
            addr = addr + (np.arange(n, dtype=np.int64) * stride).reshape((1,) * d + (n,) + (1,) * (a.ndim - d - 1))
        return np.broadcast_to(addr, a.shape)
    in_base, in_view = addresses(base).ravel(), addresses(view)
    order = np.argsort(in_base, kind="stable")
    found = np.searchsorted(in_base[order], in_view).clip(0, base.size - 1)
    if not np.array_equal(in_base[order][found], in_view):
        raise RuntimeError("element_positions: the view is not inside its base's memory")
    return order[found]


def _grid(index, dim):
    """Full index arrays for every element of `index`, with `index` itself along dim
    (torch.gather's and torch.scatter's addressing)."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


def _leading(shape, dim):
    """The first shape[d] entries of each dim but dim (gather and scatter read only those)."""
    return tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(shape))


# out = x[..., index, ...] along dim, element by element;  dx = scatter-add of d out at index
class Gather(Function):
    saves_inputs = ()

    def forward(self, x, dim, index):
        self.shape, self.dim, self.index = x.shape, dim, index
        return np.take_along_axis(x[_leading(index.shape, dim)], index, axis=dim)

    def backward(self, g):
        dx = np.zeros(self.shape, dtype=g.dtype)
        np.add.at(dx, _grid(self.index, self.dim), g)
        return dx


# out = x with out[..., index, ...] = src (or += src when add) along dim;
# dx = d out (with the written elements zeroed unless add),  dsrc = d out gathered at index
class Scatter(Function):
    saves_inputs = ()

    def forward(self, x, src, dim, index, add=False):
        self.grid, self.add, self.src_shape = _grid(index, dim), add, src.shape
        self.lead = tuple(slice(0, n) for n in index.shape)  # src may be larger than index: its first part
        out = x.copy()
        if add:
            np.add.at(out, self.grid, src[self.lead])
        else:
            out[self.grid] = src[self.lead]
        return out

    def backward(self, g):
        dx = None
        if self.needs_input_grad[0]:
            dx = g if self.add else np.array(g)
            if not self.add:
                dx[self.grid] = 0
        dsrc = np.zeros(self.src_shape, dtype=g.dtype)
        dsrc[self.lead] = g[self.grid]
        return dx, dsrc


# d cat(xs) = the matching slice of d out for each x
class Cat(Function):
    saves_inputs = ()

    def forward(self, *xs, axis=0):
        self.axis = axis
        self.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))
