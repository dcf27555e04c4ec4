"""Error types of the tokenizers: every bad input surfaces as a ValueError subclass."""


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
