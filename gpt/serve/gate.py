"""The checks every HTTP request passes before the app sees it, as one ASGI middleware.

In order: the API key (401), the body size (413, counted as the body arrives, so a
chunked upload cannot slip past a Content-Length check), and the model being loaded
(503 on /v1/*). A POST body is read as JSON whatever its Content-Type says (curl -d
labels it a form). It also counts every answer by endpoint and status for /metrics.
"""
import hmac
import json

from starlette.exceptions import HTTPException

from gpt.serve.protocol import APIError, model_loading

OPEN_PATHS = ("/health", "/", "/favicon.ico")  # no key needed: a browser opens the page without one
ENDPOINTS = ("/health", "/", "/v1/models", "/v1/completions", "/v1/chat/completions", "/tokenize",
             "/detokenize", "/metrics")


class BodyTooLarge(HTTPException):
    """Raised by receive() mid-body; FastAPI lets an HTTPException met while reading a body through."""

    def __init__(self, limit):
        super().__init__(413, f"the request body is larger than {limit} bytes (--max-body-bytes)")


class Gate:
    def __init__(self, app, api_key, max_body_bytes, ready, metrics=None):
        self.app, self.max_body_bytes, self.ready, self.metrics = app, max_body_bytes, ready, metrics
        self.key = None if api_key is None else f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        status = []
        send = self._watch(send, status, path)
        error = self._refuse(scope, path)
        if error is not None:
            return await send_error(send, error)
        if scope["method"] == "POST":  # every body here is JSON, whatever the client labelled it (curl -d)
            scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"content-type"]
                         + [(b"content-type", b"application/json")])
        try:
            await self.app(scope, self._counting(receive), send)
        except BodyTooLarge as e:
            if not status:
                await send_error(send, APIError(413, e.detail, code="request_too_large"))

    def _refuse(self, scope, path):
        headers = dict(scope["headers"])
        if self.key is not None and path not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.key):  # constant time: no timing oracle on the key
                return APIError(401, "invalid or missing API key: send 'Authorization: Bearer <key>'",
                                code="invalid_api_key")
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return self._too_large()
        if path.startswith("/v1/") and not self.ready():
            return model_loading()
        return None

    def _too_large(self):
        return APIError(413, BodyTooLarge(self.max_body_bytes).detail, code="request_too_large")

    def _counting(self, receive):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes)
            return message
        return counted

    def _watch(self, send, status, path):
        endpoint = next((e for e in ENDPOINTS if path == e or (e == "/v1/models" and path.startswith(e))), "other")

        async def watched(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
                if self.metrics is not None:
                    self.metrics.on_response(endpoint, message["status"])
            await send(message)
        return watched


async def send_error(send, error):
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), str(v).encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
