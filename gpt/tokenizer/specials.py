"""Special tokens, shared by both tokenizers: tiktoken's allowed/disallowed rules, encoding
text that holds them, and adding new ones after the largest id.

    ids = encode_with_specials(text, specials, "all", "all", tok.encode_ordinary, cache)

A special token is a string that encodes to one id of its own (`<|endoftext|>`,
ChatML's `<|im_start|>`), never to the ids of its characters, and only where the
caller allows it: text from users may spell one out without becoming one.
"""
import regex

from gpt.errors import DisallowedSpecialError, TokenizerError


def check(specials, ordinary_ids):
    """specials (str -> id) as a tokenizer holds them: non-empty strings, distinct ids that
    no ordinary token has. Returns a copy."""
    for text, i in specials.items():
        if not isinstance(text, str) or text == "":
            raise TokenizerError(f"special token must be a non-empty str, got {text!r}")
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise TokenizerError(f"special token {text!r} needs an id >= 0, got {i!r}")
        if i in ordinary_ids:
            raise TokenizerError(f"special token {text!r} id {i} collides with an ordinary token")
    if len(set(specials.values())) != len(specials):
        raise TokenizerError("two special tokens share an id")
    return dict(specials)


def with_added(specials, tokens, first_free):
    """specials (str -> id) plus each of `tokens` it lacks, numbered from first_free on.

    Example: with_added({"<|endoftext|>": 50256}, ["<|im_start|>", "<|endoftext|>"], 50257)
             == {"<|endoftext|>": 50256, "<|im_start|>": 50257}
    """
    if isinstance(tokens, str):
        raise TokenizerError(f"special tokens must be a list of str, got the str {tokens!r}")
    out = dict(specials)
    for text in dict.fromkeys(tokens):
        if text not in out:
            out[text] = first_free
            first_free += 1
    return out


def alternation(texts):
    """A regex matching any of the special strings, longest first, or None if there are none."""
    if not texts:
        return None
    ordered = sorted(texts, key=lambda s: (-len(s), s))
    return regex.compile("|".join(regex.escape(s) for s in ordered))


def special_set(value, specials, name):
    """The set of special strings an allowed_special/disallowed_special argument names."""
    if value == "all":
        return set(specials)
    if value == "none" or not value:
        return set()
    if isinstance(value, str):
        raise TokenizerError(f"{name} must be 'all', 'none' or a set of str, got {value!r}")
    unknown = set(value) - set(specials)
    if unknown and name == "allowed_special":
        raise TokenizerError(f"allowed_special names unknown special tokens: {sorted(unknown)}")
    return set(value)


def encode_with_specials(text, specials, allowed_special, disallowed_special, encode_ordinary, cache):
    """Encode text with tiktoken's rules: allowed specials become their ids, text between them
    goes to encode_ordinary, and a disallowed special in the text raises.
    cache: a dict (frozenset of str -> compiled regex) the tokenizer keeps."""
    allowed = special_set(allowed_special, specials, "allowed_special")
    if disallowed_special == "all":
        disallowed = set(specials) - allowed
    else:
        disallowed = special_set(disallowed_special, specials, "disallowed_special")
    if disallowed:
        found = _regex(disallowed, cache).search(text)
        if found:
            raise DisallowedSpecialError(
                f"text contains the special token {found.group()!r}, which is not allowed; "
                f"pass allowed_special={{{found.group()!r}}} to encode it as a special token, "
                f"or disallowed_special=() to encode it as ordinary text")
    if not allowed:
        return encode_ordinary(text)
    out, start = [], 0
    for match in _regex(allowed, cache).finditer(text):
        out += encode_ordinary(text[start:match.start()])
        out.append(specials[match.group()])
        start = match.end()
    return out + encode_ordinary(text[start:])


def _regex(texts, cache):
    key = frozenset(texts)
    if key not in cache:
        cache[key] = alternation(texts)
    return cache[key]
