"""Shape ops: views, joins and splits, repeats and masks, indexing, gather and scatter.

Each checks its arguments against the tensor's shape (the message names the op
and the shapes), then applies the primitives of movement.py, or composes them
(flatten, repeat, chunk, tril, ...), so that only those carry a backward.
Indexing follows PyTorch where it differs from NumPy: an int index is applied
first, as a select, so in `x[1, :, idx]` the dim of `idx` stays where it is
(NumPy would move it to the front).
"""
import numpy as np

from minigrad import dtypes, movement, ops
from minigrad.args import (check_dim, check_ids, dims_arg, int_array, is_tensor, raw, shape_arg,
                           size_args)
from minigrad.pointwise import cast, where


# ---- views ---------------------------------------------------------------------------------

def reshape(input, *shape):  # noqa: A002  (torch's names)
    return movement.Reshape.apply(input, shape=shape_arg(shape, input.data.size))


def permute(input, *dims):  # noqa: A002
    return movement.Permute.apply(input, dims=dims_arg(dims, input.ndim))


def transpose(input, dim0, dim1):  # noqa: A002
    dims = list(range(input.ndim))
    a, b = check_dim(dim0, input.ndim, "transpose"), check_dim(dim1, input.ndim, "transpose")
    if input.ndim == 0:
        return input
    dims[a], dims[b] = dims[b], dims[a]
    return permute(input, *dims)


def expand(input, *sizes):  # noqa: A002
    """Size-1 dims repeated without copying (a read-only view); -1 keeps a dim."""
    sizes = size_args(sizes, "expand")
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    try:
        ok = lead >= 0 and min(shape, default=0) >= 0 and np.broadcast_shapes(input.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expand: cannot expand shape {input.shape} to {sizes}")
    return movement.Expand.apply(input, shape=shape)


def squeeze(input, dim=None):  # noqa: A002
    """Drop size-1 dims: all of them, or those named (a named dim of size > 1 stays, as torch)."""
    if dim is None:
        drop = {d for d, n in enumerate(input.shape) if n == 1}
    else:
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        drop = {check_dim(d, input.ndim, "squeeze") for d in dims}
    return reshape(input, *[n for d, n in enumerate(input.shape) if d not in drop or n != 1])


def unsqueeze(input, dim):  # noqa: A002
    dim = check_dim(dim, input.ndim + 1, "unsqueeze")
    return reshape(input, *input.shape[:dim], 1, *input.shape[dim:])


def flatten(input, start_dim=0, end_dim=-1):  # noqa: A002
    """Merge dims start_dim..end_dim into one; a 0-d tensor becomes shape (1,)."""
    if input.ndim == 0:
        return reshape(input, 1)
    start, end = check_dim(start_dim, input.ndim, "flatten"), check_dim(end_dim, input.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {input.shape})")
    merged = int(np.prod(input.shape[start:end + 1]))
    return reshape(input, *input.shape[:start], merged, *input.shape[end + 1:])


def unflatten(input, dim, sizes):  # noqa: A002
    """Split dim into `sizes` (one may be -1)."""
    dim = check_dim(dim, input.ndim, "unflatten")
    sizes = size_args((sizes,), "unflatten")
    n = input.shape[dim]
    known = int(np.prod([s for s in sizes if s != -1]))
    if sizes.count(-1) > 1 or (-1 not in sizes and known != n) or (-1 in sizes and (known == 0 or n % known)):
        raise ValueError(f"unflatten: sizes {sizes} do not multiply to {n}, the size of dim {dim} of {input.shape}")
    sizes = tuple(n // known if s == -1 else s for s in sizes)
    return reshape(input, *input.shape[:dim], *sizes, *input.shape[dim + 1:])


def clone(input):  # noqa: A002
    """A copy with its own memory (differentiable)."""
    return ops.Clone.apply(input)


# ---- joins and splits ----------------------------------------------------------------------

def cat(tensors, dim=0, *, axis=None):
    """Join along an existing dim; the result has the promoted dtype of all the tensors."""
    dim = dim if axis is None else axis
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    like = next((t for t in tensors if is_tensor(t)), None)
    tensors = [t if is_tensor(t) else like._make(dtypes.as_array(t), None) for t in tensors]
    dtype = dtypes.result_type(*tensors)
    tensors = [cast(t, dtype) for t in tensors]
    shapes = [t.shape for t in tensors]
    if len({t.ndim for t in tensors}) != 1 or tensors[0].ndim == 0:
        raise ValueError(f"cat: tensors {shapes} must all have the same number of dims (at least 1)")
    dim = check_dim(dim, tensors[0].ndim, "cat")
    if len({s[:dim] + s[dim + 1:] for s in shapes}) != 1:
        raise ValueError(f"cat: shapes {shapes} differ outside dim {dim}")
    return movement.Cat.apply(*tensors, axis=dim)


def stack(tensors, dim=0, *, axis=None):
    dim = dim if axis is None else axis
    tensors = list(tensors)
    shapes = [t.shape for t in tensors]
    if not tensors or len(set(shapes)) != 1:
        raise ValueError(f"stack: tensors must all have the same shape, got {shapes}")
    dim = check_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(tensor, split_size_or_sections, dim=0, *, axis=None):
    """Chunks of a given size (int; the last may be smaller) or of the given sizes (list)."""
    dim = check_dim(dim if axis is None else axis, tensor.ndim, "split")
    n = tensor.shape[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size < 1 and not (size == 0 and n == 0):
            raise ValueError(f"split: split size must be positive, got {size}")
        sizes = [min(size, n - s) for s in range(0, n, size)] if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or min(sizes, default=0) < 0:
            raise ValueError(f"split: sections {sizes} do not add up to {n}, the size of dim {dim}")
    starts = np.cumsum([0] + sizes[:-1])
    lead = (slice(None),) * dim
    return tuple(index(tensor, lead + (slice(int(s), int(s + k)),)) for s, k in zip(starts, sizes))


def chunk(input, chunks, dim=0):  # noqa: A002
    """Up to `chunks` pieces of equal size ceil(n / chunks), the last smaller (as torch)."""
    if chunks < 1:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = input.shape[check_dim(dim, input.ndim, "chunk")]
    if n == 0:
        return tuple(index(input, (slice(None),) * (dim % input.ndim) + (slice(0, 0),)) for _ in range(chunks))
    return split(input, -(-n // chunks), dim)


def select(input, dim, index_):  # noqa: A002
    dim = check_dim(dim, input.ndim, "select")
    return index(input, (slice(None),) * dim + (index_,))


def unbind(input, dim=0):  # noqa: A002
    dim = check_dim(dim, input.ndim, "unbind")
    return tuple(select(input, dim, i) for i in range(input.shape[dim]))


def narrow(input, dim, start, length):  # noqa: A002
    dim = check_dim(dim, input.ndim, "narrow")
    start = start % input.shape[dim] if start < 0 else start
    if length < 0 or start + length > input.shape[dim]:
        raise IndexError(f"narrow: start {start} + length {length} exceeds dim {dim} of size {input.shape[dim]}")
    return index(input, (slice(None),) * dim + (slice(start, start + length),))


def repeat(input, *sizes):  # noqa: A002
    """Tile the tensor sizes[i] times along dim i (extra leading sizes add dims), as torch.repeat."""
    sizes = size_args(sizes, "repeat")
    if len(sizes) < input.ndim or min(sizes, default=0) < 0:
        raise ValueError(f"repeat: need at least {input.ndim} non-negative sizes for shape {input.shape}, got {sizes}")
    shape = (1,) * (len(sizes) - input.ndim) + input.shape
    x = reshape(input, *[d for s in shape for d in (1, s)])  # (1, s0, 1, s1, ...)
    x = expand(x, *[d for r, s in zip(sizes, shape) for d in (r, s)])  # (r0, s0, r1, s1, ...)
    return reshape(x, *[r * s for r, s in zip(sizes, shape)])


def _triangle(input, diagonal, lower, op):
    if input.ndim < 2:
        raise ValueError(f"{op}: needs a tensor of at least 2 dims, got shape {input.shape}")
    rows, cols = input.shape[-2:]
    keep = np.tri(rows, cols, diagonal, dtype=bool) if lower else ~np.tri(rows, cols, diagonal - 1, dtype=bool)
    return where(keep, input, input._make(np.zeros((), input.dtype), None))


def tril(input, diagonal=0):  # noqa: A002
    """The lower triangle of the last two dims (j <= i + diagonal); zeros above."""
    return _triangle(input, diagonal, True, "tril")


def triu(input, diagonal=0):  # noqa: A002
    """The upper triangle of the last two dims (j >= i + diagonal); zeros below."""
    return _triangle(input, diagonal, False, "triu")


# ---- indexing --------------------------------------------------------------------------------

def _index_item(i):
    i = raw(i)
    if isinstance(i, list):
        i = np.asarray([raw(v) for v in i])
    if isinstance(i, np.ndarray) and i.ndim == 0 and i.dtype.kind in "iu":
        return int(i)  # a 0-d integer tensor indexes as an int, as in torch
    if isinstance(i, np.integer):
        return int(i)
    return i


def index_steps(index, ndim):
    """The user's index as NumPy indices applied one after the other, giving PyTorch's result.

    NumPy treats an int beside an index array as one more index array, and when such
    indices are separated by a slice it moves their dims to the front; PyTorch applies
    ints first, as selects. So ints (and None) go first, then the index arrays at the
    dims they now address. Example: x[1, :, idx] -> x[1, :, :] then [:, idx].
    """
    items = tuple(_index_item(i) for i in (index if isinstance(index, tuple) else (index,)))
    arrays = [isinstance(i, np.ndarray) for i in items]
    if not any(arrays) or not any(i is None or isinstance(i, int) for i in items):
        return (items,)
    width = [i.ndim if isinstance(i, np.ndarray) and i.dtype == bool else 0 if i is None or i is Ellipsis else 1
             for i in items]
    first, second = [], []
    for item, w in zip(items, width):
        if item is Ellipsis:
            first.append(Ellipsis)
            second.extend([slice(None)] * (ndim - sum(width)))
        elif isinstance(item, np.ndarray):
            first.extend([slice(None)] * w)
            second.append(item)
        elif isinstance(item, int):
            first.append(item)
        else:  # a slice or None: one dim of the first result
            first.append(item)
            second.append(slice(None))
    return tuple(first), tuple(second)


def index(input, idx):  # noqa: A002
    """input[idx] with PyTorch's rules (ints, slices, None, ..., bool masks, index tensors)."""
    steps = index_steps(idx, input.ndim)
    x = input
    try:
        for step in steps:
            x = movement.Index.apply(x, index=step)
    except IndexError as e:
        raise IndexError(f"index: cannot index a tensor of shape {input.shape} with {idx!r}: {e}") from None
    return x


def _gather_index(op, input, dim, idx):
    dim = check_dim(dim, input.ndim, op)
    idx = int_array(op, "index", idx)
    if idx.ndim != max(input.ndim, 1) and not (input.ndim == 0 and idx.ndim == 0):
        raise ValueError(f"{op}: index {idx.shape} must have as many dims as input {input.shape}")
    if any(i > n for d, (i, n) in enumerate(zip(idx.shape, input.shape)) if d != dim):
        raise ValueError(f"{op}: index {idx.shape} is larger than input {input.shape} outside dim {dim}")
    check_ids(op, "index", idx, input.shape[dim] if input.ndim else 1)
    return dim, idx


def gather(input, dim, index):  # noqa: A002
    """out[i][j] = input[i][index[i][j]] for dim=1 (and likewise for any dim), as torch.gather."""
    if input.ndim == 0:
        return reshape(gather(reshape(input, 1), 0, np.reshape(raw(index), 1)), ())
    dim, idx = _gather_index("gather", input, dim, index)
    return movement.Gather.apply(input, dim=dim, index=idx)


def scatter(input, dim, index, src=None, value=None, reduce=None):  # noqa: A002
    """A copy of input with input[i][index[i][j]] = src[i][j] for dim=1 (or `value`), as
    torch.scatter; reduce='add' adds instead (scatter_add)."""
    if reduce not in (None, "add"):
        raise ValueError(f"scatter: reduce must be None or 'add', got {reduce!r}")
    dim, idx = _gather_index("scatter", input, dim, index)
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter: give src (a tensor) or value (a number)")
    if not is_tensor(src):
        src = input._make(np.broadcast_to(np.asarray(src, dtype=input.dtype), idx.shape), None)
    elif src.ndim != idx.ndim or any(i > n for i, n in zip(idx.shape, src.shape)):
        raise ValueError(f"scatter: src {src.shape} must have index's dims and be at least as large as "
                         f"index {idx.shape}")
    return movement.Scatter.apply(input, cast(src, input.dtype), dim=dim, index=idx, add=reduce == "add")


def scatter_add(input, dim, index, src):  # noqa: A002
    return scatter(input, dim, index, src, reduce="add")
