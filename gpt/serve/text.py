"""From generated token ids to the text a client receives: UTF-8 and stop strings.

A token may end inside a multi-byte character (byte-level BPE), so its text is
only known once the character completes: `TextStream` decodes incrementally.
A stop string may span several tokens, so text that could be the start of one
is held back until it is clear either way; when one appears, the text before it
is released and the sequence stops (OpenAI's `stop`: the stop string itself is
not returned).
"""
import codecs


class TextStream:
    """The text of one generated sequence, released as it becomes final.

        s = TextStream(tokenizer, stops=["\\n\\n"])
        delta, stopped = s.add(token_id)   # text safe to send now; True once a stop string appeared
        tail = s.finish()                  # at the end: whatever was held back
    """

    def __init__(self, tokenizer, stops=()):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""  # everything decoded so far
        self.sent = 0   # how much of it is released

    def add(self, token_id):
        """Append one token; returns (newly released text, whether a stop string ended it)."""
        self.text += self.decoder.decode(self.tokenizer.token_to_bytes(int(token_id)))
        cut = self._stop_at()
        if cut is not None:
            delta, self.sent, self.text = self.text[self.sent:cut], cut, self.text[:cut]
            return delta, True
        safe = len(self.text) - self._held()
        delta, self.sent = self.text[self.sent:safe], max(self.sent, safe)
        return delta, False

    def finish(self):
        """The rest of the text (held-back text and any incomplete character, as U+FFFD)."""
        self.text += self.decoder.decode(b"", final=True)
        delta, self.sent = self.text[self.sent:], len(self.text)
        return delta

    def _stop_at(self):
        """Where the earliest stop string starts, if one is in the unreleased text (a stop
        string never starts in released text: any text that could begin one is held back)."""
        hits = [self.text.find(s, self.sent) for s in self.stops]
        hits = [h for h in hits if h >= 0]
        return min(hits) if hits else None

    def _held(self):
        """How many trailing characters could be the beginning of a stop string."""
        held = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.text)), held, -1):
                if self.text.endswith(s[:n]):
                    held = n
                    break
        return min(held, len(self.text) - self.sent)


def token_text(tokenizer, token_id):
    """A token as one string for logprobs: its text, or OpenAI's 'bytes:\\\\xNN' form when its
    bytes are not complete UTF-8 on their own."""
    raw = tokenizer.token_to_bytes(int(token_id))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)
