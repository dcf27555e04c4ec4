"""Hugging Face GPT-2 interop: config.json (config.py), safetensors weights (weights.py),
and whole folders both ways (pretrained.py). Tokenizer files are in gpt/tokenizer/hf.py."""
from gpt.hf.config import config_from_hf, hf_config  # noqa: F401
from gpt.hf.pretrained import CONFIG_NAME, from_pretrained, save_pretrained  # noqa: F401
from gpt.hf.weights import WEIGHTS_NAME  # noqa: F401
