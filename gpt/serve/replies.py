"""From scheduler events to OpenAI's JSON: one response object, or a stream of chunks.

A reply is fed the events of one HTTP call as (prompt index, event) pairs. Choice i
of prompt p is choice p * n + i of the answer, as in OpenAI's completions API.

    reply.opening()        chunks to send before any event (chat: the assistant's role)
    reply.chunks(batch)    chunks for a batch of events (one per choice that moved)
    reply.closing()        chunks after the last event (usage, when asked for)
    reply.add(batch); reply.response()   the same events gathered into one object
"""
from gpt.serve.protocol import chat_logprobs, envelope, legacy_logprobs, new_id, usage
from gpt.serve.scheduler import Delta, Done, Finish


class _Choice:
    def __init__(self):
        self.text, self.tokens, self.finish_reason = [], [], None


class _Reply:
    object = chunk_object = None

    def __init__(self, model, tokenizer, n, n_prompts, logprobs, include_usage):
        self.id, self.model, self.tokenizer, self.n = new_id(self.prefix), model, tokenizer, n
        self.logprobs, self.include_usage = logprobs, include_usage
        self.choices = [_Choice() for _ in range(n * n_prompts)]
        self.prompt_tokens = self.completion_tokens = 0

    # ---- one response ----

    def add(self, batch):
        for p, e in batch:
            if isinstance(e, Done):
                self.prompt_tokens += e.prompt_tokens
                self.completion_tokens += e.completion_tokens
                continue
            if isinstance(e, tuple):  # ("prompt", infos): the prompt's own logprobs (echo)
                self._prompt(p, e[1])
                continue
            c = self.choices[p * self.n + e.index]
            if isinstance(e, Delta):
                c.text.append(e.text)
                c.tokens += e.tokens
            elif isinstance(e, Finish):
                c.finish_reason = e.reason

    def response(self):
        choices = [self._choice(i, c) for i, c in enumerate(self.choices)]
        return envelope(self.id, self.object, self.model, choices,
                        usage=usage(self.prompt_tokens, self.completion_tokens))

    # ---- a stream ----

    def opening(self):
        return []

    def chunks(self, batch):
        out = []
        for p, e in batch:
            if isinstance(e, Done):
                self.prompt_tokens += e.prompt_tokens
                self.completion_tokens += e.completion_tokens
            elif isinstance(e, tuple):
                out += self._prompt_chunks(p, e[1])
            elif isinstance(e, (Delta, Finish)):
                out.append(self._chunk(p * self.n + e.index, e))
        return _merge(out)

    def closing(self):
        if not self.include_usage:
            return []
        return [envelope(self.id, self.chunk_object, self.model, [],
                         usage=usage(self.prompt_tokens, self.completion_tokens))]

    def _prompt(self, p, infos):
        pass

    def _prompt_chunks(self, p, infos):
        return []


class CompletionReply(_Reply):
    prefix, object, chunk_object = "cmpl", "text_completion", "text_completion"

    def __init__(self, model, tokenizer, n, prompts, logprobs, include_usage, echo_texts=None):
        super().__init__(model, tokenizer, n, len(prompts), logprobs, include_usage)
        self.echo_texts = echo_texts   # each prompt's text, when echo is on
        self.offsets = [0] * len(self.choices)
        if echo_texts:
            for i, c in enumerate(self.choices):
                self.offsets[i] = len(echo_texts[i // n])
                if logprobs is None:
                    c.text.append(echo_texts[i // n])

    def _prompt(self, p, infos):  # echo + logprobs: the prompt's text and logprobs lead
        for i in range(p * self.n, (p + 1) * self.n):
            self.choices[i].text.insert(0, self.echo_texts[p])
            self.choices[i].tokens[:0] = infos

    def _choice(self, i, c):
        lp = legacy_logprobs(c.tokens, 0) if self.logprobs is not None else None
        return {"index": i, "text": "".join(c.text), "logprobs": lp, "finish_reason": c.finish_reason}

    def opening(self):
        if not self.echo_texts or self.logprobs is not None:
            return []
        return [self._text_chunk(i, self.echo_texts[i // self.n], None) for i in range(len(self.choices))]

    def _prompt_chunks(self, p, infos):
        chunks = [self._text_chunk(i, self.echo_texts[p], None) for i in range(p * self.n, (p + 1) * self.n)]
        for c in chunks:
            c["choices"][0]["logprobs"] = legacy_logprobs(infos, 0)
        return chunks

    def _chunk(self, i, e):
        if isinstance(e, Finish):
            return self._text_chunk(i, "", e.reason)
        chunk = self._text_chunk(i, e.text, None)
        if self.logprobs is not None:
            chunk["choices"][0]["logprobs"] = legacy_logprobs(e.tokens, self.offsets[i])
        self.offsets[i] += len(e.text)
        return chunk

    def _text_chunk(self, i, text, finish_reason):
        return envelope(self.id, self.chunk_object, self.model,
                        [{"index": i, "text": text, "logprobs": None, "finish_reason": finish_reason}])


class ChatReply(_Reply):
    prefix, object, chunk_object = "chatcmpl", "chat.completion", "chat.completion.chunk"

    def _choice(self, i, c):
        lp = chat_logprobs(c.tokens, self.tokenizer) if self.logprobs is not None else None
        return {"index": i, "message": {"role": "assistant", "content": "".join(c.text)},
                "logprobs": lp, "finish_reason": c.finish_reason}

    def opening(self):
        return [self._delta_chunk(i, {"role": "assistant", "content": ""}, None) for i in range(len(self.choices))]

    def _chunk(self, i, e):
        if isinstance(e, Finish):
            return self._delta_chunk(i, {}, e.reason)
        chunk = self._delta_chunk(i, {"content": e.text}, None)
        if self.logprobs is not None:
            chunk["choices"][0]["logprobs"] = chat_logprobs(e.tokens, self.tokenizer)
        return chunk

    def _delta_chunk(self, i, delta, finish_reason):
        return envelope(self.id, self.chunk_object, self.model,
                        [{"index": i, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])


def _merge(chunks):
    """Consecutive text of one choice in one chunk: a client slower than the model gets fewer,
    larger chunks instead of falling behind."""
    out = []
    for c in chunks:
        prev = out[-1]["choices"][0] if out else None
        cur = c["choices"][0]
        if prev is not None and prev["index"] == cur["index"] and prev["finish_reason"] is None \
                and cur["finish_reason"] is None and not prev.get("logprobs") and not cur.get("logprobs"):
            if "text" in cur:
                prev["text"] += cur["text"]
                continue
            if "content" in cur["delta"] and "content" in prev["delta"] and "role" not in prev["delta"]:
                prev["delta"]["content"] += cur["delta"]["content"]
                continue
        out.append(c)
    return out
