"""gpt: a GPT-2 built on minigrad, with its tokenizer, optimizer, sampler and trainer."""
from gpt.tokenizer import BPETokenizer  # noqa: E402,F401
from gpt.char_tokenizer import CharTokenizer  # noqa: E402,F401
from gpt.tokenizer_io import load_tokenizer  # noqa: E402,F401
from gpt.tokenizer_errors import TokenizerError  # noqa: E402,F401
from gpt.model import GPT, GPTConfig  # noqa: E402,F401
from gpt.sample import generate, generate_stream, stream  # noqa: E402,F401
from gpt.config import TrainConfig  # noqa: E402,F401
from gpt.data import DataError  # noqa: E402,F401
from gpt.train import NonFiniteLossError, Trainer  # noqa: E402,F401
