"""The HTTP API: OpenAI's completions and chat completions, llama.cpp's tokenize/detokenize and
/health, Prometheus' /metrics and the web page, on FastAPI (served by uvicorn, gpt/serve/server.py).

    app = create_app(ServeConfig(model_name="shk"), load)   # load(metrics) -> Engine, run in a thread

The app answers at once: /health and /v1/* say 503 until `load` returns. A request
becomes one scheduler Request per prompt (gpt/serve/scheduler.py); their events come
back through an asyncio queue and leave as one JSON response or as server-sent events
(OpenAI's chunks, then `data: [DONE]`). A client that disconnects cancels its requests,
which frees their slots at the scheduler's next step.
"""
import asyncio
import json
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, StrictBool, StrictInt, StrictStr
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException

from gpt.serve import handlers
from gpt.serve.gate import BodyTooLarge, Gate
from gpt.serve.metrics import Metrics
from gpt.serve.protocol import (APIError, ChatRequest, CompletionRequest, error_body, model_loading,
                                validation_error)
from gpt.serve.scheduler import Done, Failed, QueueFull, ShuttingDown


@dataclass
class ServeConfig:
    model_name: str = "gpt"              # the one id in /v1/models; requests naming another get 404
    api_key: str = None                  # when set, every endpoint but /health and / needs it
    max_batch: int = 8                   # sequences decoded together (slots of the KV cache)
    max_queue: int = 64                  # requests that may wait for a slot; more get 429
    max_body_bytes: int = 1 << 20        # larger request bodies get 413
    max_tokens_limit: int = 4096         # largest max_tokens a request may ask for
    shutdown_grace: float = 10.0         # seconds in-flight requests may take to finish after SIGTERM
    on_load_error: object = None         # called with the exception if loading fails


@dataclass
class Engine:
    """What `load` returns: the model and its tokenizer, chat template (or None), scheduler and metrics
    (the app's, handed to load)."""
    model: object
    tokenizer: object
    template: object
    scheduler: object
    metrics: object


class TokenizeRequest(BaseModel):
    content: StrictStr
    with_pieces: StrictBool = False


class DetokenizeRequest(BaseModel):
    tokens: list[StrictInt]


def create_app(config, load):
    """The ASGI app; load(metrics) -> Engine runs in a thread at startup."""
    metrics = Metrics(config.max_batch)
    state = {"engine": None, "error": None, "mailbox": None}

    @asynccontextmanager
    async def lifespan(app):
        state["mailbox"] = Mailbox(asyncio.get_running_loop())
        threading.Thread(target=_load, args=(state, lambda: load(metrics), config), name="gpt-serve-load",
                         daemon=True).start()
        yield
        if state["engine"] is not None:
            state["engine"].scheduler.stop()

    app = FastAPI(title="gpt serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.serve = state
    _add_error_handlers(app)
    _add_routes(app, state, config, metrics)
    return Gate(app, config.api_key, config.max_body_bytes, lambda: state["engine"] is not None, metrics)


def _load(state, load, config):
    try:
        state["engine"] = load()
    except BaseException as e:  # noqa: B036 - any failure ends the server, with its message
        state["error"] = e
        if config.on_load_error is not None:
            config.on_load_error(e)


def _add_error_handlers(app):
    @app.exception_handler(APIError)
    async def api_error(request, e):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e):
        err = validation_error(e.errors())
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, e):
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(e.status_code)
        message = e.detail if isinstance(e, BodyTooLarge) else f"{request.method} {request.url.path}: {e.detail}"
        return JSONResponse(error_body(message, code=code), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def crashed(request, e):
        return JSONResponse(error_body(f"internal error: {type(e).__name__}: {e}", type="server_error"),
                            status_code=500)


def _engine(state):
    if state["engine"] is None:
        raise model_loading()
    return state["engine"]


def _add_routes(app, state, config, metrics):
    @app.get("/health")
    async def health():
        if state["engine"] is None:
            message = "the model failed to load" if state["error"] else "the model is loading"
            return JSONResponse(error_body(message, type="unavailable_error", code="model_loading"),
                                status_code=503)
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return resources.files("gpt.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [handlers.model_card(config.model_name)]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        handlers.check_model(model_id, config.model_name)
        return handlers.model_card(config.model_name)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        engine = _engine(state)
        requests, reply = handlers.completion_call(engine, config, body)
        return await _answer(Call(engine.scheduler, state["mailbox"], requests), reply, body.stream, request)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request):
        engine = _engine(state)
        requests, reply = handlers.chat_call(engine, config, body)
        return await _answer(Call(engine.scheduler, state["mailbox"], requests), reply, body.stream, request)

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest):
        return handlers.tokenize(_engine(state).tokenizer, body.content, body.with_pieces)

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest):
        return handlers.detokenize(_engine(state).tokenizer, body.tokens)

    @app.get("/metrics")
    async def prometheus():  # available while loading too
        return Response(metrics.render(), media_type=metrics.content_type)


# ---- running a call ---------------------------------------------------------------------------

class Mailbox:
    """Events from the decode thread to the event loop: one wake-up of the loop carries every
    request's events posted since the last one (a wake-up is a syscall and a loop iteration;
    8 streams would otherwise cost 8 of them per decoding step)."""

    def __init__(self, loop):
        self.loop, self.lock = loop, threading.Lock()
        self.pending, self.scheduled = [], False

    def post(self, queue, item):
        """From any thread: queue.put_nowait(item) on the loop, soon."""
        with self.lock:
            self.pending.append((queue, item))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed (shutdown): nobody is listening
            pass

    def _deliver(self):
        with self.lock:
            items, self.pending, self.scheduled = self.pending, [], False
        for queue, item in items:
            queue.put_nowait(item)


class Call:
    """The scheduler requests of one HTTP request and the events they send back to this loop."""

    def __init__(self, scheduler, mailbox, requests):
        self.scheduler, self.requests = scheduler, requests
        self.queue = asyncio.Queue()
        for i, r in enumerate(requests):
            r.sink = lambda events, i=i: mailbox.post(self.queue, (i, events))

    def submit(self):
        try:
            for r in self.requests:
                self.scheduler.submit(r)
        except QueueFull as e:
            self.cancel()
            raise APIError(429, f"the server is busy: {e}; retry shortly", type="rate_limit_error",
                           code="rate_limit_exceeded", headers={"Retry-After": "1"}) from None
        except ShuttingDown as e:
            self.cancel()
            raise APIError(503, str(e), type="unavailable_error", code="shutting_down") from None

    def cancel(self):
        for r in self.requests:
            r.cancel()

    async def batches(self):
        """Lists of (prompt index, event) as they arrive (several turns' worth when the client
        is slower than the model), until every request is Done; Failed raises APIError."""
        open_requests = len(self.requests)
        while open_requests:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            out = []
            for i, events in batch:
                for e in events:
                    if isinstance(e, Failed):
                        raise APIError(e.status, e.message, type="server_error")
                    open_requests -= isinstance(e, Done)
                    out.append((i, e))
            yield out


async def _answer(call, reply, stream, request):
    call.submit()
    if stream:
        return EventSourceResponse(_stream(call, reply), sep="\n", ping=15)  # sep: as _frames
    collector = asyncio.ensure_future(_collect(call, reply))
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not collector.done():  # the client left: nobody to answer
            call.cancel()
            collector.cancel()
            return Response(status_code=499)
        return JSONResponse(collector.result())
    finally:
        watcher.cancel()
        call.cancel()


async def _collect(call, reply):
    async for batch in call.batches():
        reply.add(batch)
    return reply.response()


async def _stream(call, reply):
    """The response's events, each batch's chunks as one write: every write is a pass through
    sse-starlette's send (a timeout scope) and uvicorn's transport, which with 8 streams cost
    the event loop more than the chunks themselves (bench/serve_load.py)."""
    try:
        yield _frames(json.dumps(chunk) for chunk in reply.opening())
        async for batch in call.batches():
            frames = _frames(json.dumps(chunk) for chunk in reply.chunks(batch))
            if frames:
                yield frames
        yield _frames([json.dumps(chunk) for chunk in reply.closing()] + ["[DONE]"])
    except APIError as e:
        yield _frames([json.dumps(e.body())])
    finally:
        call.cancel()  # after the last chunk a no-op; on a disconnect it frees the slots


def _frames(datas):
    """Server-sent events (bytes), one `data: ...` event per string, as the response's sep."""
    return b"".join(ServerSentEvent(data, sep="\n").encode() for data in datas)


async def _disconnected(request):
    while (await request.receive())["type"] != "http.disconnect":
        pass
