"""gpt: GPT-2 on minigrad, with its tokenizer, sampler, trainer and the `gpt` command.

    model.py      GPTConfig, GPT: the architecture and the training forward pass
    inference.py  the forward pass on bare arrays with a per-sequence KV cache
    sample.py     generate, stream: greedy, temperature, top-k, top-p
    tokenizer/    byte-level BPE and char tokenizers, their files, tiktoken/HF interop
    hf/           Hugging Face GPT-2 folders (config.json + safetensors), both ways
    data/         the corpus, its token ids, batches
    train/        building a run, one step, the loop
    checkpoint.py, evaluate.py, config.py, errors.py, cli.py (the `gpt` command)
"""
from gpt.errors import (CheckpointError, ConfigError, DataError, NonFiniteLossError,  # noqa: F401
                        TokenizerError)
from gpt.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer  # noqa: F401
from gpt.model import GPT, GPTConfig  # noqa: F401
from gpt.sample import generate, stream  # noqa: F401
from gpt.config import TrainConfig  # noqa: F401
