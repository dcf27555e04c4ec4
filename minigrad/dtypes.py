"""Dtypes: what data becomes, and what dtype an op on mixed operands returns.

PyTorch's rules, on NumPy dtypes. Python floats become float32 (the default
float), Python ints int64. An op on several operands returns
`result_type(*operands)`, as `torch.result_type`: operands fall in three
categories, bool < integer < floating, and in three priorities, tensors with
dims > 0-d tensors > Python numbers. The highest category wins; within it the
operands of the highest priority that reach it decide the dtype. So a float32
tensor times a float64 0-d tensor stays float32, an int32 tensor plus 5 stays
int32, and an int64 tensor times 2.5 is float32 (a Python float counts as the
default float). NumPy would answer float64 to the last two.

    result_type(int32 tensor, 5)            -> int32
    result_type(int64 tensor, 0-d float64)  -> float64   (a higher category)
    result_type(float16 tensor, float32 0-d) -> float16
"""
import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)
INT64, BOOL = np.dtype(np.int64), np.dtype(np.bool_)
_NUMBERS = (bool, int, float, np.bool_, np.integer, np.floating)


def category(dtype):
    """0 bool, 1 integer, 2 floating."""
    return 2 if dtype.kind in "fc" else 1 if dtype.kind in "iu" else 0


def is_float(dtype):
    return dtype.kind in "fc"


def is_number(x):
    return isinstance(x, _NUMBERS)


def number_dtype(x):
    """The dtype a Python (or NumPy) number takes when it meets a tensor: bool, int64 or
    the default float. NumPy scalars count as numbers, as in torch (np.sqrt(d) is a
    number, not a float64 tensor)."""
    if isinstance(x, (bool, np.bool_)):
        return BOOL
    return INT64 if isinstance(x, (int, np.integer)) else DEFAULT_FLOAT


def promote_types(a, b):
    """Two dtypes of the same priority: the higher category wins outright (int64 with
    float16 is float16, as torch); within a category the wider type (NumPy's rule)."""
    if a == b:
        return a
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    out = np.promote_types(a, b)
    return INT64 if ca == 1 and out.kind == "f" else out  # uint64 with int64: no float64 detour


def _promote_all(dtypes):
    out = None
    for d in dtypes:
        out = d if out is None else promote_types(out, d)
    return out


def _combine(higher, lower):
    """torch's rule for two priority levels: the higher priority keeps its dtype unless
    the lower one reaches a higher category."""
    if higher is None:
        return lower
    if lower is None or category(higher) >= category(lower):
        return higher
    return promote_types(higher, lower) if category(lower) == 2 or higher == BOOL else higher


def result_type(*operands):
    """The dtype of an op's result on these operands (tensors, arrays or numbers), as
    torch.result_type. Example: result_type(int32 tensor, 2.5) -> float32."""
    dims, zeros, numbers = [], [], []
    for x in operands:
        if is_number(x):
            numbers.append(number_dtype(x))
        else:
            (dims if x.ndim else zeros).append(x.dtype)
    return _combine(_promote_all(dims), _combine(_promote_all(zeros), _promote_all(numbers)))


def float_result(dtype):
    """The dtype of a floating-only op (exp, division, mean) on this dtype: floats keep
    theirs, bools and ints become the default float."""
    return dtype if dtype.kind in "fc" else DEFAULT_FLOAT


def as_dtype(dtype):
    """A dtype argument (np.float32, "float32", np.dtype, Python float/int/bool) as np.dtype."""
    if dtype is float:
        return DEFAULT_FLOAT
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: {dtype!r} is not a dtype (use np.float32, 'float32', minigrad.int64, ...)") from None


def as_array(data, dtype=None):
    """Convert user data the way torch.tensor does: Python floats become float32,
    Python ints int64, and NumPy arrays keep their dtype unless `dtype` says otherwise."""
    if hasattr(data, "_ctx") and hasattr(data, "data"):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=as_dtype(dtype))
    if isinstance(data, (np.ndarray, np.generic)):
        return np.array(data)
    arr = np.array(data)
    if arr.dtype == np.float64:
        return arr.astype(DEFAULT_FLOAT)
    if arr.dtype.kind in "iu":
        return arr.astype(INT64)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"tensor: cannot convert {type(data).__name__} to a numeric array")
    return arr
