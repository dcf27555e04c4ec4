"""What each endpoint does with a validated request: checks against the model and the server's
limits, prompts to token ids, and the scheduler requests and reply that answer it.

Every check raises APIError (400, or 404 for an unknown model) before anything is queued.
"""
import time

from gpt.chat import check_messages
from gpt.errors import DataError, TokenizerError
from gpt.serve.protocol import APIError
from gpt.serve.replies import ChatReply, CompletionReply
from gpt.serve.scheduler import Request, Sampling

ENDOFTEXT = "<|endoftext|>"
CREATED = int(time.time())   # /v1/models' "created": when this server started


def model_card(name):
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "minigrad"}


def check_model(name, served):
    if name is not None and name != served:
        raise APIError(404, f"the model {name!r} does not exist; this server serves {served!r}",
                       param="model", code="model_not_found")


# ---- completions ------------------------------------------------------------------------------

def completion_call(engine, config, body):
    """(scheduler requests, reply) for a checked CompletionRequest."""
    if body.max_tokens is None:  # an explicit null: OpenAI's default
        body.max_tokens = 16
    _check_common(body, config, body.max_tokens)
    prompts = _prompts(engine, body.prompt)
    block = engine.model.config.block_size
    for i, ids in enumerate(prompts):
        _check_context(ids, block, need=0 if body.max_tokens == 0 else 1, where="prompt" + (f"[{i}]" if i else ""))
    sampling = _sampling(body, body.max_tokens, body.logprobs, body.stops(), _eot(engine.tokenizer))
    requests = [Request(ids, sampling, body.n, prompt_logprobs=body.echo and body.logprobs is not None)
                for ids in prompts]
    echo = [engine.tokenizer.decode(ids) for ids in prompts] if body.echo else None
    reply = CompletionReply(config.model_name, engine.tokenizer, body.n, prompts, body.logprobs,
                            _include_usage(body), echo)
    engine.metrics.on_prompt(sum(len(ids) for ids in prompts))
    return requests, reply


def _prompts(engine, prompt):
    """The prompt(s) as lists of token ids: a string, strings, token ids, or lists of them."""
    if isinstance(prompt, list) and not prompt:
        raise APIError(400, "prompt: the list of prompts is empty", param="prompt")
    if isinstance(prompt, str) or isinstance(prompt[0], str):
        return [_encode(engine.tokenizer, text) for text in ([prompt] if isinstance(prompt, str) else prompt)]
    prompts = [prompt] if isinstance(prompt[0], int) else prompt
    V = engine.tokenizer.vocab_size
    for ids in prompts:
        bad = [t for t in ids if not 0 <= t < V]
        if bad or not ids:
            raise APIError(400, f"prompt: token id {bad[0]} is outside [0, {V})" if bad else
                           "prompt: an empty list of token ids", param="prompt")
    return prompts


def _encode(tokenizer, text):
    """A completion prompt's ids; special-token text (<|endoftext|>) counts as such, as in
    `gpt sample`. An empty prompt starts from <|endoftext|> when the tokenizer has it."""
    try:
        ids = tokenizer.encode(text, allowed_special="all")
    except TokenizerError as e:
        raise APIError(400, f"prompt: cannot be encoded with this model's tokenizer: {e}", param="prompt") from None
    if not ids:
        eot = tokenizer.special_tokens.get(ENDOFTEXT)
        if eot is None:
            raise APIError(400, "prompt: empty, and this tokenizer has no <|endoftext|> to start from",
                           param="prompt")
        ids = [eot]
    return ids


# ---- chat ---------------------------------------------------------------------------------------

def chat_call(engine, config, body):
    """(scheduler requests, reply) for a checked ChatRequest."""
    template = engine.template
    if template is None:
        raise APIError(400, "this checkpoint has no chat template (chat_template.json beside the model), so it "
                            "cannot chat; use /v1/completions, or fine-tune it on chat data", param="messages",
                       code="no_chat_template")
    if body.top_logprobs is not None and not body.logprobs:
        raise APIError(400, "top_logprobs: needs logprobs: true", param="top_logprobs")
    ids = _chat_ids(engine.tokenizer, template, [m.plain() for m in body.messages])
    block = engine.model.config.block_size
    _check_context(ids, block, need=1, where="messages")
    asked = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    _check_common(body, config, asked)
    max_tokens = asked if asked is not None else min(block - len(ids), config.max_tokens_limit)
    specials = engine.tokenizer.special_tokens
    stop_ids = _eot(engine.tokenizer) | ({specials[template.end]} if template.end in specials else set())
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    sampling = _sampling(body, max_tokens, logprobs, body.stops() + [template.end], stop_ids)
    reply = ChatReply(config.model_name, engine.tokenizer, body.n, 1, logprobs, _include_usage(body))
    engine.metrics.on_prompt(len(ids))
    return [Request(ids, sampling, body.n)], reply


def _chat_ids(tokenizer, template, messages):
    """The conversation rendered by the template, then the assistant's opening; the turn markers
    are special tokens when the tokenizer has them. A message may not contain the markers
    itself (it could otherwise close its own turn and speak for another role)."""
    try:
        check_messages(messages)
    except DataError as e:
        raise APIError(400, str(e), param="messages") from None
    for i, m in enumerate(messages):
        for marker in template.special_tokens:
            if marker in m["content"]:
                raise APIError(400, f"messages[{i}].content contains the chat marker {marker!r}", param="messages")
    markers = set(template.special_tokens) & set(tokenizer.special_tokens)
    try:
        return tokenizer.encode(template.render(messages, add_generation_prompt=True),
                                allowed_special=markers, disallowed_special=())
    except TokenizerError as e:
        raise APIError(400, f"messages: cannot be encoded with this model's tokenizer: {e}",
                       param="messages") from None


# ---- shared -----------------------------------------------------------------------------------

def _check_common(body, config, max_tokens):
    check_model(body.model, config.model_name)
    field = body.unsupported()
    if field is not None:
        raise APIError(400, f"{field}: not supported by this server", param=field, code="unsupported_parameter")
    if body.n > config.max_batch:
        raise APIError(400, f"n: {body.n} choices need {body.n} slots; this server has {config.max_batch} "
                            "(--max-batch)", param="n")
    if max_tokens is not None and max_tokens > config.max_tokens_limit:
        raise APIError(400, f"max_tokens: {max_tokens} is more than this server allows ({config.max_tokens_limit}, "
                            "--max-tokens-limit)", param="max_tokens")


def _check_context(ids, block, need, where):
    """A prompt must leave `need` positions of the model's context for the answer (an answer
    longer than the room left ends with finish_reason "length")."""
    if len(ids) + need > block:
        raise APIError(400, f"{where}: {len(ids)} tokens, but the model's context is {block} tokens"
                            + (" and the answer needs at least one" if need else ""),
                       param="messages" if where == "messages" else "prompt", code="context_length_exceeded")


def _sampling(body, max_tokens, logprobs, stops, stop_ids):
    """The scheduler's settings; ignore_eos drops the end-of-text/turn tokens (and the chat
    marker's text) as stops, keeping only the client's own stop strings."""
    if body.ignore_eos:
        stops, stop_ids = body.stops(), set()
    return Sampling(max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
                    seed=body.seed, stop=tuple(stops), stop_ids=frozenset(stop_ids), logprobs=logprobs)


def _eot(tokenizer):
    eot = tokenizer.special_tokens.get(ENDOFTEXT)
    return set() if eot is None else {eot}


def _include_usage(body):
    return not body.stream or bool(body.stream_options and body.stream_options.include_usage)


# ---- tokenize / detokenize (llama.cpp's server) -------------------------------------------------

def tokenize(tokenizer, content, with_pieces):
    try:
        ids = tokenizer.encode(content, allowed_special="all")
    except TokenizerError as e:
        raise APIError(400, f"content: cannot be encoded with this model's tokenizer: {e}", param="content") from None
    if not with_pieces:
        return {"tokens": ids}
    return {"tokens": [{"id": t, "piece": tokenizer.decode([t])} for t in ids]}


def detokenize(tokenizer, tokens):
    try:
        return {"content": tokenizer.decode(tokens)}
    except TokenizerError as e:
        raise APIError(400, f"tokens: {e}", param="tokens") from None
