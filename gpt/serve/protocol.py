"""The OpenAI API's shapes: request schemas (pydantic), response and chunk objects, error objects.

Requests are validated strictly (a string is not a number, a number not a bool), and
every failure becomes OpenAI's error object with status 400 and the offending field in
`param`. Fields this server does not know are ignored, as newer clients send more;
known ones it cannot honour (penalties, logit_bias, best_of, suffix) are a 400 rather
than silently dropped.
"""
import time
import uuid
from typing import Annotated, List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

Temperature = Annotated[float, Field(ge=0, le=2, strict=True)]
TopP = Annotated[float, Field(gt=0, le=1, strict=True)]
Count = Annotated[StrictInt, Field(ge=0)]
MAX_STOPS = 4          # as OpenAI
MAX_LOGPROBS = 20      # top alternatives per token


class APIError(Exception):
    """An error answered as {"error": {"message", "type", "param", "code"}} with this status."""

    def __init__(self, status, message, type="invalid_request_error", param=None, code=None, headers=None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self):
        return error_body(self.message, self.type, self.param, self.code)


def model_loading():
    """The 503 every model endpoint answers until the weights are loaded."""
    return APIError(503, "the model is loading; retry shortly", type="unavailable_error",
                    code="model_loading", headers={"Retry-After": "1"})


def error_body(message, type="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def validation_error(errors):
    """The first of pydantic's errors (RequestValidationError.errors()) as a 400 APIError."""
    e = errors[0] if errors else {"loc": ("body",), "msg": "invalid request", "type": "invalid"}
    path = [str(p) for p in e.get("loc", ())[1:]]
    if e.get("type") == "json_invalid":
        detail = (e.get("ctx") or {}).get("error", e.get("msg"))
        return APIError(400, f"the request body is not valid JSON: {detail}", code="invalid_json")
    if not path:
        return APIError(400, f"the request body must be a JSON object: {e.get('msg')}")
    return APIError(400, f"{'.'.join(path)}: {e.get('msg')}", param=path[0], code=e.get("type"))


# ---- requests ---------------------------------------------------------------------------------

class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class _Sampling(BaseModel):
    """What completions and chat share."""
    model_config = ConfigDict(extra="ignore")
    model: Optional[StrictStr] = None            # optional here (one model); checked when given
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    top_k: Count = 0                             # llama.cpp's: 0 = off
    ignore_eos: StrictBool = False               # vLLM's and llama.cpp's: run to max_tokens (benchmarks)
    n: Annotated[StrictInt, Field(ge=1)] = 1
    stop: Union[StrictStr, Annotated[List[StrictStr], Field(max_length=MAX_STOPS)], None] = None
    seed: Optional[StrictInt] = None
    stream: StrictBool = False
    stream_options: Optional[StreamOptions] = None
    presence_penalty: Annotated[float, Field(strict=True)] = 0.0
    frequency_penalty: Annotated[float, Field(strict=True)] = 0.0
    logit_bias: Optional[dict] = None
    user: Optional[StrictStr] = None

    def unsupported(self):
        """The name of a known field set to something this server does not do, or None."""
        if self.presence_penalty or self.frequency_penalty:
            return "presence_penalty" if self.presence_penalty else "frequency_penalty"
        return "logit_bias" if self.logit_bias else None

    def stops(self):
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(_Sampling):
    prompt: Union[StrictStr, List[StrictStr], List[StrictInt], List[List[StrictInt]]]
    max_tokens: Optional[Count] = 16             # OpenAI's default
    logprobs: Optional[Annotated[StrictInt, Field(ge=0, le=MAX_LOGPROBS)]] = None
    echo: StrictBool = False
    best_of: Optional[StrictInt] = None
    suffix: Optional[StrictStr] = None

    def unsupported(self):
        if self.best_of not in (None, 1, self.n):
            return "best_of"
        return "suffix" if self.suffix else super().unsupported()


class TextPart(BaseModel):
    type: StrictStr
    text: StrictStr = ""


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: StrictStr
    content: Union[StrictStr, List[TextPart]]

    def plain(self):
        """{"role", "content"} with text parts joined (OpenAI's developer role is our system)."""
        parts = self.content if isinstance(self.content, str) else "".join(
            p.text for p in self.content if p.type == "text")
        return {"role": "system" if self.role == "developer" else self.role, "content": parts}


class ChatRequest(_Sampling):
    messages: Annotated[List[Message], Field(min_length=1)]
    max_tokens: Optional[Count] = None           # default: the rest of the context
    max_completion_tokens: Optional[Count] = None
    logprobs: StrictBool = False
    top_logprobs: Optional[Annotated[StrictInt, Field(ge=0, le=MAX_LOGPROBS)]] = None


# ---- responses ---------------------------------------------------------------------------------

def new_id(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens, completion_tokens):
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def envelope(id, object, model, choices, created=None, **extra):
    return dict(id=id, object=object, created=created or int(time.time()), model=model,
                choices=choices, **extra)


def legacy_logprobs(tokens, offset):
    """The completions API's logprobs for TokenInfos whose text starts at char `offset`."""
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for t in tokens:
        out["tokens"].append(t.text)
        out["token_logprobs"].append(t.logprob)
        out["top_logprobs"].append({text: lp for text, _, lp in t.top} if t.logprob is not None else None)
        out["text_offset"].append(offset)
        offset += len(t.text)
    return out


def chat_logprobs(tokens, tokenizer):
    """The chat API's logprobs: {"content": [{token, logprob, bytes, top_logprobs}]}."""
    def entry(text, id, logprob):
        return {"token": text, "logprob": logprob, "bytes": list(tokenizer.token_to_bytes(id))}
    return {"content": [dict(entry(t.text, t.id, t.logprob), top_logprobs=[entry(*alt) for alt in t.top])
                        for t in tokens]}
