"""gpt/serve/text.py: generated tokens to released text, with UTF-8 split across tokens and stop
strings split across tokens (no serving stack needed)."""
import pytest

from gpt.serve.text import TextStream, token_text
from gpt.tokenizer import BPETokenizer


class Pieces:
    """A tokenizer whose token i is the i-th byte string given."""

    def __init__(self, *pieces):
        self.pieces = [p.encode() if isinstance(p, str) else p for p in pieces]

    def token_to_bytes(self, i):
        return self.pieces[i]


def run(pieces, stops, n=None):
    tok = Pieces(*pieces)
    s = TextStream(tok, stops)
    deltas, stopped = [], False
    for i in range(len(pieces) if n is None else n):
        d, stopped = s.add(i)
        deltas.append(d)
        if stopped:
            break
    if not stopped:
        deltas.append(s.finish())
    return deltas, stopped


@pytest.mark.parametrize("pieces,stops,deltas,stopped", [
    # pieces                           stops        released after each token (+ finish)        stopped
    (["ab", "cd"],                     [],          ["ab", "cd", ""],                            False),
    (["ab", "\n", "\n", "x"],          ["\n\n"],    ["ab", "", ""],                              True),   # stop over 2 tokens
    (["ab", "\n", "cd"],               ["\n\n"],    ["ab", "", "\ncd", ""],                      False),  # held, then released
    (["hello wor", "ld"],              ["world"],   ["hello ", ""],                              True),   # stop inside a token
    (["x", "EN", "D", "y"],            ["END"],     ["x", "", ""],                               True),
    (["a", "b"],                       ["bc"],      ["a", "", "b"],                              False),  # finish releases held text
    ([b"\xe2\x82", b"\xac!"],          [],          ["", "\u20ac!", ""],                         False),  # a char over 2 tokens
    ([b"\xe2\x82"],                    [],          ["", "\ufffd"],                              False),  # cut char at the end
    (["ab", "cX", "Yd"],               ["XY", "b"], ["a"],                                       True),   # earliest stop wins
])
def test_text_stream(pieces, stops, deltas, stopped):
    assert run(pieces, stops) == (deltas, stopped)


def test_token_text_marks_partial_utf8_as_bytes():
    tok = BPETokenizer()  # the 256 single bytes
    assert token_text(tok, ord("a")) == "a"
    assert token_text(tok, 0xE2) == "bytes:\\xe2"
