"""Saving and loading state: safetensors files, JSON, and the one atomic-write helper.

Nothing here unpickles: tensors go to safetensors (a JSON header and raw
little-endian bytes), everything else to JSON. Every write goes through
`atomic_write`: a temporary file beside the target, fsynced, then renamed over
it, so a crash mid-write leaves the previous file whole.

    safe_save(model.state_dict(), "model.safetensors")
    model.load_state_dict(safe_load("model.safetensors"))
    tree, arrays = split_tree(optimizer.state_dict())   # JSON-able tree + named arrays
"""
import json
import os
import tempfile

import numpy as np
import safetensors.numpy

# File dtype -> NumPy dtype of its bytes; "BF16" is read as uint16 and widened (NumPy lacks it).
DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
          "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I8": np.dtype("i1"), "U8": np.dtype("u1")}
MAX_HEADER = 100 << 20  # bytes; a larger header is a damaged or hostile file


class StateFileError(ValueError):
    """A state file that cannot be read: the message names the file and what is wrong."""


# ---- atomic writes --------------------------------------------------------------------------

def fsync_path(path):
    """fsync a file or a directory (directories: so renames inside them are durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; nothing more we can do
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Call write(tmp_path) on a temp file beside `path`, fsync it, then rename it over `path`.
    On any error the temp file is removed and `path` is untouched."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        fsync_path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_path(folder)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    return atomic_write(path, write)


def write_json(path, obj, indent=1):
    return write_text(path, json.dumps(obj, indent=indent) + "\n")


# ---- safetensors ------------------------------------------------------------------------------

def safe_save(tensors, path, metadata=None):
    """Write {name: ndarray} as a safetensors file, atomically (contiguous copies as needed)."""
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: safetensors.numpy.save_file(arrays, tmp, metadata=metadata))


def safe_load(path):
    """{name: ndarray} of a safetensors file (NumPy dtypes only: see read_into for bfloat16)."""
    start, entries = read_header(path)
    out = {}
    with open(path, "rb") as f:
        for key, entry in entries.items():
            if entry[0] not in DTYPES or entry[0] == "BF16":
                raise StateFileError(f"{path}: tensor {key!r} is {entry[0]}; safe_load reads "
                                     f"{', '.join(k for k in DTYPES if k != 'BF16')}")
            out[key] = read_into(f, start, entry, np.empty(entry[1], DTYPES[entry[0]]))
    return out


def read_header(path):
    """(offset of the data, {key: (dtype name, shape, begin, end)}) of a safetensors file,
    every entry checked against the file's size before any data is read."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if size < 8 or not 2 <= n <= min(MAX_HEADER, size - 8):
            raise StateFileError(f"{path}: not a safetensors file (header length {n}, file size {size})")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StateFileError(f"{path}: damaged safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise StateFileError(f"{path}: damaged safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    start, entries = 8 + n, {}
    for key, info in header.items():
        try:
            dtype, shape = info["dtype"], tuple(int(n) for n in info["shape"])
            begin, end = (int(n) for n in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise StateFileError(f"{path}: tensor {key!r} has a malformed header entry") from None
        item = DTYPES[dtype].itemsize if dtype in DTYPES else None
        if item is not None and (end - begin != int(np.prod(shape)) * item or not 0 <= begin <= end
                                 or start + end > size):
            raise StateFileError(f"{path}: tensor {key!r} has bytes [{begin}, {end}) that do not "
                                 f"fit its shape {shape} and {dtype}, or the file (truncated?)")
        entries[key] = (dtype, shape, begin, end)
    return start, entries


def read_into(f, start, entry, out):
    """Fill the array `out` with the tensor at `entry` (from read_header) of the open file f,
    widening to out.dtype (bfloat16 is the top half of a float32: exact). Reads straight
    into out's memory when the dtypes match, so a model loads without a second copy."""
    dtype, shape, begin, _ = entry
    f.seek(start + begin)
    raw = DTYPES[dtype]
    if raw == out.dtype and out.flags.c_contiguous and raw.isnative:
        if f.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise StateFileError(f"{f.name}: file ends inside a tensor")
        return out
    data = np.fromfile(f, dtype=raw, count=int(np.prod(shape)))
    if dtype == "BF16":
        data = (data.astype(np.uint32) << 16).view(np.float32)
    out[...] = data.reshape(shape)
    return out


# ---- a tree of dicts and lists with arrays in it (an optimizer's state_dict) --------------------

def split_tree(tree, prefix="", arrays=None):
    """Replace each ndarray leaf by {"__array__": key}; return (JSON-able tree, {key: ndarray}).
    Dicts become {"__dict__": [[key, value], ...]} so that int keys survive JSON."""
    arrays = {} if arrays is None else arrays
    if isinstance(tree, np.ndarray):
        arrays[prefix] = np.ascontiguousarray(tree)
        return {"__array__": prefix}, arrays
    if isinstance(tree, dict):
        return {"__dict__": [[k, split_tree(v, f"{prefix}.{k}" if prefix else str(k), arrays)[0]]
                             for k, v in tree.items()]}, arrays
    if isinstance(tree, (list, tuple)):
        return [split_tree(v, f"{prefix}.{i}" if prefix else str(i), arrays)[0]
                for i, v in enumerate(tree)], arrays
    if isinstance(tree, np.generic):
        return tree.item(), arrays
    return tree, arrays


def join_tree(tree, arrays):
    """Inverse of split_tree."""
    if isinstance(tree, dict):
        if "__array__" in tree:
            return arrays[tree["__array__"]]
        return {k: join_tree(v, arrays) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [join_tree(v, arrays) for v in tree]
    return tree
