"""Helpers for the `gpt serve` tests: small checkpoints, and a server on a free port of
127.0.0.1 in this process (uvicorn in a thread) or in a subprocess (`gpt serve`)."""
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np

import minigrad as mg
from gpt import checkpoint
from gpt.chat import ChatTemplate
from gpt.model import GPT, GPTConfig
from gpt.tokenizer import BPETokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = ("Where the bee sucks, there suck I: in a cowslip's bell I lie; there I couch when owls do cry. "
        "On the bat's back I do fly after summer merrily. Merrily, merrily shall I live now under the "
        "blossom that hangs on the bough. def main(argv=None): return 0 if argv else 1\n") * 4
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MODEL_NAME = "tiny-test"
SERVE_EXTRA = ("fastapi", "uvicorn", "sse_starlette", "prometheus_client")


def serving_stack():
    """(httpx, openai): the serve extra and the test clients, or skip (fail under CI)."""
    from conftest import require
    for module in SERVE_EXTRA:
        require(module)
    return require("httpx"), require("openai")


def make_checkpoint(folder, chat=True, block_size=96, seed=0):
    """A 2-layer GPT with random weights spread wide enough that greedy answers vary token to
    token, a small BPE tokenizer with the end-of-text and ChatML tokens, and (if chat) the
    chat template. Returns the folder."""
    tok = BPETokenizer().train(TEXT, vocab_size=300, special_tokens=SPECIALS)
    mg.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=32))
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += (0.3 * rng.standard_normal(p.shape)).astype(p.data.dtype)
    checkpoint.save(folder, model, tok, None, {"iter": 0})
    if chat:
        ChatTemplate().save(folder)
    return str(folder)


class LiveServer:
    """The app of `gpt serve` on uvicorn in a thread of this process, ready when constructed.

        with LiveServer(folder, max_batch=2) as s:
            httpx.get(s.url + "/health")
    """

    def __init__(self, folder, load_gate=None, adapter=None, quantize=None, **config):
        import uvicorn
        from gpt.serve.api import ServeConfig, create_app
        from gpt.serve.server import _bind, preflight
        self.config = ServeConfig(model_name=MODEL_NAME, **config)
        load = preflight(folder, adapter, self.config, quantize)
        if load_gate is not None:  # the test decides when loading finishes
            real_load = load

            def load(metrics):
                assert load_gate.wait(30), "the test never released the loader"
                return real_load(metrics)
        self.app = create_app(self.config, load)
        sock = _bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        self.wait_until(lambda: self.server.started, "the server to start")
        if load_gate is None:
            self.wait_ready()

    @property
    def engine(self):
        return self.app.app.state.serve["engine"]

    def wait_ready(self, timeout=60):
        self.wait_until(lambda: self.engine is not None, "the model to load", timeout)

    @staticmethod
    def wait_until(condition, what, timeout=30):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {what}")
            time.sleep(0.02)

    def close(self):
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the server did not stop"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start_process(*args, env=None):
    """`gpt serve` in a subprocess on a free port: (process, url); url is None if it never
    printed its listening line (it exited first)."""
    cmd = [sys.executable, "-m", "gpt.cli", "serve", "--port", "0", *args]
    env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    line = proc.stdout.readline()  # the first line, or "" at exit
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    return proc, (f"http://127.0.0.1:{m.group(1)}" if m else None)
