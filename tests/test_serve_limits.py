"""`gpt serve`'s limits and guards, on a server with one slot, a one-request queue, a small body
limit and an API key: 401 (the key compared in constant time), 413, 429 with Retry-After, a
client that disconnects mid-stream (or mid-wait) frees its slot, chat without a template is 400.
A slow model is a forward that sleeps, so that the tests decide who waits, not the machine."""
import threading
import time

import pytest

from serve_helpers import MODEL_NAME, LiveServer, make_checkpoint, serving_stack

from gpt import inference

KEY = "sekrit-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def stack():
    return serving_stack()


@pytest.fixture(scope="module")
def server(stack, tmp_path_factory):
    folder = make_checkpoint(tmp_path_factory.mktemp("ckpt"), chat=False, block_size=256)
    with LiveServer(folder, api_key=KEY, max_batch=1, max_queue=1, max_body_bytes=4000) as s:
        yield s


@pytest.fixture
def slow_model(monkeypatch):
    """Every forward takes 30 ms more: 200 tokens take ~6 s."""
    real = inference.forward

    def slow(*args, **kw):
        time.sleep(0.03)
        return real(*args, **kw)
    monkeypatch.setattr(inference, "forward", slow)


def post(stack, server, path, body, **kw):
    return stack[0].post(server.url + path, json=body, headers=AUTH, timeout=60, **kw)


def wait_idle(server, timeout=10):
    server.wait_until(lambda: server.engine.scheduler.load() == (0, 0), "the slots to free", timeout)


def test_api_key_on_every_endpoint_but_health_and_the_page(server, stack, monkeypatch):
    httpx, openai = stack
    import gpt.serve.gate as gate
    compared = []
    real = gate.hmac.compare_digest
    monkeypatch.setattr(gate.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    assert httpx.get(server.url + "/health").status_code == 200
    assert httpx.get(server.url + "/").status_code == 200
    for method, path in [("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/tokenize"),
                         ("POST", "/detokenize"), ("GET", "/metrics")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            r = httpx.request(method, server.url + path, headers=headers, json={})
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", (path, headers)
    assert compared, "the key was not compared with hmac.compare_digest"
    assert httpx.get(server.url + "/v1/models", headers=AUTH).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
    good = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    assert good.completions.create(model=MODEL_NAME, prompt="hi", max_tokens=2).choices


def test_bodies_over_the_limit_get_413_declared_or_chunked(server, stack):
    httpx = stack[0]
    big = b'{"prompt": "' + b"x" * 5000 + b'"}'
    r = httpx.post(server.url + "/v1/completions", content=big, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = httpx.post(server.url + "/v1/completions", content=(big[i:i + 500] for i in range(0, len(big), 500)),
                   headers=AUTH)  # a generator: sent chunked, no Content-Length
    assert r.status_code == 413
    assert post(stack, server, "/v1/completions", {"prompt": "hi", "max_tokens": 2}).status_code == 200


def test_chat_without_a_template_is_400(server, stack):
    r = post(stack, server, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_chat_template"


def test_a_full_queue_answers_429_with_retry_after(server, stack, slow_model):
    httpx, openai = stack
    result = {}
    queued = threading.Thread(target=lambda: result.update(r=post(stack, server, "/v1/completions",
                                                                   {"prompt": "hi", "max_tokens": 3})))
    with httpx.stream("POST", server.url + "/v1/completions", headers=AUTH, timeout=60,
                      json={"prompt": "hi", "max_tokens": 200, "stream": True, "ignore_eos": True}) as running:
        lines = running.iter_lines()  # kept: a dropped iterator closes the response
        next(lines)  # admitted: it holds the only slot
        queued.start()
        server.wait_until(lambda: server.engine.scheduler.load()[0] == 1, "the second request to queue")
        r = post(stack, server, "/v1/completions", {"prompt": "hi", "max_tokens": 3})
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
        assert r.json()["error"]["type"] == "rate_limit_error"
        with pytest.raises(openai.RateLimitError):
            openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0).completions.create(
                model=MODEL_NAME, prompt="hi", max_tokens=3)
    queued.join(30)  # the stream closed: its slot went to the waiting request
    assert result["r"].status_code == 200
    wait_idle(server)


def cancelled_count(stack, server):
    text = stack[0].get(server.url + "/metrics", headers=AUTH).text
    line = next((l for l in text.splitlines() if l.startswith('gpt_request_duration_seconds_count{outcome="cancelled"}')),
                None)
    return 0 if line is None else float(line.split()[-1])


def test_a_client_leaving_mid_stream_frees_its_slot(server, stack, slow_model):
    httpx = stack[0]
    before = cancelled_count(stack, server)
    with httpx.stream("POST", server.url + "/v1/completions", headers=AUTH, timeout=60,
                      json={"prompt": "hi", "max_tokens": 200, "stream": True, "ignore_eos": True}) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ") and server.engine.scheduler.load()[1] == 1
    wait_idle(server)
    assert cancelled_count(stack, server) == before + 1  # freed by the disconnect, not by finishing
    r = post(stack, server, "/v1/completions", {"prompt": "hi", "max_tokens": 3, "ignore_eos": True})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3


def test_a_client_leaving_a_non_streaming_request_frees_its_slot(server, stack, slow_model):
    httpx = stack[0]
    before = cancelled_count(stack, server)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", headers=AUTH, timeout=0.5,
                   json={"prompt": "hi", "max_tokens": 200, "ignore_eos": True})
    wait_idle(server)
    assert cancelled_count(stack, server) == before + 1
