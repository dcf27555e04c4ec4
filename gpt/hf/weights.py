"""Hugging Face GPT-2 weights: which safetensors files, which names, read into a model.

Only safetensors is read (pickles can run code when loaded). Each tensor is read
into its parameter's own buffer (minigrad.nn.state.read_into: float16/bfloat16
widened exactly), so loading 124M parameters costs one model of memory, not two.
Every header is checked (names, shapes, byte ranges) before any data is read, so
a bad folder fails fast, naming the file and the tensor.
"""
import json
import os

import numpy as np

from minigrad.nn.state import StateFileError, read_header, read_into

from gpt.errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"  # sharded checkpoints: tensor name -> shard file
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")  # what a weight may be stored as
# HF's causal-mask buffers, saved by some older versions; not weights
BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
OTHER_FORMATS = ("tf_model.h5", "flax_model.msgpack")


def weight_files(directory):
    """The safetensors file(s) of a checkpoint folder: model.safetensors or the shards
    its index names. A folder with only a pickle or another framework's file is refused."""
    single, index = os.path.join(directory, WEIGHTS_NAME), os.path.join(directory, INDEX_NAME)
    if os.path.exists(single):
        return [single]
    if os.path.exists(index):
        return _shards(index, directory)
    for name in PICKLES:
        if os.path.exists(os.path.join(directory, name)):
            raise CheckpointError(
                f"{directory}: only {name} (a pickle) is there, and pickles are never loaded here "
                "since they can run code. Convert it once with transformers: "
                "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)")
    others = [n for n in OTHER_FORMATS if os.path.exists(os.path.join(directory, n))]
    hint = f" (found {', '.join(others)}: convert it to safetensors with transformers)" if others else ""
    raise FileNotFoundError(f"{directory}: no {WEIGHTS_NAME} found (nor {INDEX_NAME}){hint}")


def _shards(index_path, directory):
    try:
        with open(index_path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index_path}: not a safetensors index ({e!r})") from None
    names = sorted(set(weight_map.values()))
    for name in names:  # shard names are plain file names: never read outside the folder
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise CheckpointError(f"{index_path}: bad shard file name {name!r}")
        if not os.path.exists(os.path.join(directory, name)):
            raise FileNotFoundError(f"{index_path}: shard {name} is missing from {directory}")
    return [os.path.join(directory, n) for n in names]


def our_name(key, bias):
    """Our parameter name for a file key, or None for entries that are not weights here."""
    name = key if key.startswith(("transformer.", "lm_head.")) else "transformer." + key  # GPT2Model files
    if name.endswith(BUFFER_SUFFIXES):
        return None
    if not bias and name.endswith(".bias"):
        return None  # saved as zeros for HF; our bias-free model has none
    return name


def plan(model, files):
    """Check every header against the model; return {our name: (path, start, key, entry)}."""
    expected = {name: p.shape for name, p in model.state_dict().items()}
    found = {}
    for path in files:
        try:
            start, entries = read_header(path)
        except StateFileError as e:
            raise CheckpointError(str(e)) from None
        for key, entry in entries.items():
            name = our_name(key, model.config.bias)
            if name is None:
                continue
            if name not in expected:
                raise CheckpointError(f"{path}: unexpected tensor {key!r} for a GPT-2 model")
            if name in found:
                raise CheckpointError(f"{path}: tensor {key!r} also appears in {found[name][0]}")
            dtype, shape = entry[0], entry[1]
            if dtype not in FLOAT_DTYPES:
                raise CheckpointError(f"{path}: tensor {key!r} is {dtype}; weights must be "
                                      f"floating point ({', '.join(FLOAT_DTYPES)})")
            if shape != expected[name]:
                raise CheckpointError(f"{path}: tensor {key!r} has shape {shape}, expected "
                                      f"{expected[name]} from config.json")
            found[name] = (path, start, key, entry)
    if "transformer.wte.weight" not in found and "lm_head.weight" in found:
        found["transformer.wte.weight"] = found["lm_head.weight"]  # tied: either copy will do
    missing = [n for n in expected if n != "lm_head.weight" and n not in found]
    if missing:
        where = files[0] if len(files) == 1 else os.path.dirname(files[0])
        raise CheckpointError(f"{where}: missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return found


def load_into(model, files):
    """Read the checkpoint's weights into model's parameters, in place."""
    found = plan(model, files)
    params = model.state_dict()
    head = found.pop("lm_head.weight", None)
    by_file = {}
    for name, (path, start, key, entry) in found.items():
        by_file.setdefault(path, []).append((entry[2], name, start, entry))
    for path, items in by_file.items():
        with open(path, "rb") as f:
            for _, name, start, entry in sorted(items, key=lambda item: item[0]):  # file order
                _read(f, start, entry, params[name])
    if head is not None and head is not found["transformer.wte.weight"]:  # both in the file
        _check_tied(head, params["transformer.wte.weight"])
    return model


def _check_tied(head, wte):
    """GPT-2 ties lm_head to wte; a file whose lm_head differs is another model."""
    path, start, key, entry = head
    with open(path, "rb") as f:
        values = _read(f, start, entry, np.empty_like(wte))
    if not np.array_equal(values, wte):
        raise CheckpointError(f"{path}: lm_head.weight differs from transformer.wte.weight, but GPT-2 "
                              "ties them (tie_word_embeddings)")


def _read(f, start, entry, out):
    try:
        return read_into(f, start, entry, out)
    except StateFileError as e:
        raise CheckpointError(str(e)) from None
