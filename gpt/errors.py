"""Every error the gpt package raises for bad input, in one place.

Each is a ValueError (or RuntimeError for a run that went wrong), so callers may
catch them broadly; the `gpt` command prints any of them as one `error: ...`
line and exits 2 (1 for a non-finite loss).
"""


class ConfigError(ValueError):
    """A config value that is well-typed but unusable (e.g. n_embd not divisible by n_head)."""


class DataError(ValueError):
    """A corpus or data file we cannot use: missing, empty, undecodable, malformed or too short."""


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, damaged or not what the caller needs."""


class TokenizerError(ValueError):
    """A tokenizer was asked to do something it cannot (bad id, bad pattern, bad text...)."""


class TokenizerFileError(TokenizerError):
    """A tokenizer file is missing, corrupt or truncated; the message names the file and line."""

    def __init__(self, path, message, line=None):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class DisallowedSpecialError(TokenizerError):
    """Text contains special-token text that the caller did not allow (tiktoken's check)."""


class MissingExtraError(ConfigError):
    """A feature asked for needs an optional package that is not installed; the message names
    the `pip install` to run."""


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN or Inf; the message names the step and the kept checkpoint."""


class DistributedError(RuntimeError):
    """The ranks of a data-parallel run disagree (data, flags, weights) or cannot work together."""
