"""`gpt serve`: check the checkpoint, bind the port, load in the background, serve until a signal.

1. Before binding: config.json, every weight file's header, the tokenizer, the chat
   template and the adapter folder are checked; a bad checkpoint is one `error:` line
   and a non-zero exit, with the port never opened.
2. Bind (port 0 picks a free one) and print `gpt serve: listening on http://HOST:PORT`.
3. uvicorn serves at once; the weights are read and the kernels compiled (one warm-up
   step) in a thread, while /health and /v1/* answer 503. A failure there ends the
   server with status 1.
4. SIGTERM or Ctrl-C: stop accepting, give in-flight requests up to --shutdown-timeout
   seconds, cancel the rest, exit 0. uvicorn runs in a thread so that this module, not
   uvicorn, owns the signals (uvicorn would re-raise SIGTERM and die by it).
"""
import signal
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import uvicorn

from gpt import checkpoint, inference, lora
from gpt.errors import ConfigError
from gpt.hf import weights
from gpt.hf.pretrained import open_pretrained
from gpt.model import GPT
from gpt.quantize import quantize_int8
from gpt.serve.api import Engine, ServeConfig, create_app
from gpt.serve.scheduler import Scheduler


def serve(args):
    """Run the server for the parsed `gpt serve` flags; returns the exit status."""
    config = _config(args)
    load = preflight(args.ckpt, args.adapter, config, getattr(args, "quantize", None))
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(f"gpt serve: listening on http://{host}:{port} (model {config.model_name!r}, loading {args.ckpt})",
          flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(config, load), log_level=args.log_level,
                                           access_log=args.log_level in ("debug", "info"),
                                           timeout_graceful_shutdown=config.shutdown_grace))
    status = {"code": 0}

    def failed(e):
        print(f"error: loading {args.ckpt} failed: {e}", file=sys.stderr, flush=True)
        status["code"] = 1
        server.should_exit = True
    config.on_load_error = failed
    _run(server, sock)
    return status["code"]


def _config(args):
    for flag in ("max_batch", "max_queue", "max_body_bytes", "max_tokens_limit"):
        if getattr(args, flag) < (0 if flag == "max_queue" else 1):
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= {0 if flag == 'max_queue' else 1}, "
                              f"got {getattr(args, flag)}")
    if args.shutdown_timeout < 0:
        raise ConfigError(f"--shutdown-timeout must be >= 0, got {args.shutdown_timeout}")
    folder = Path(args.ckpt).resolve()
    default_name = folder.parent.name if folder.name == "ckpt" else folder.name  # runs/shk/ckpt -> shk
    return ServeConfig(model_name=args.model_name or default_name, api_key=args.api_key,
                       max_batch=args.max_batch, max_queue=args.max_queue, max_body_bytes=args.max_body_bytes,
                       max_tokens_limit=args.max_tokens_limit, shutdown_grace=args.shutdown_timeout)


def preflight(ckpt, adapter, config, quantize=None):
    """Check everything that can be checked without reading the weights; returns load(metrics),
    which reads them and builds the Engine. With an adapter (gpt/lora.py), the tokenizer and
    chat template are the adapter's when it has them (fine-tuning may add special tokens).
    quantize "int8": weight-only int8 matmuls (gpt/quantize.py), after the adapter is applied."""
    folder, adapter = checkpoint.with_adapter(ckpt, adapter)
    checkpoint.read_trainer_state_or_none(folder)  # a damaged trainer state is an error here too
    tokenizer = checkpoint.load_tokenizer(folder, adapter)
    model, files = open_pretrained(GPT, folder)
    if adapter is None:
        checkpoint.check_vocab(model, tokenizer, folder)
    else:
        lora.read_config(adapter)  # a bad adapter_config.json stops us before binding
    template = checkpoint.load_template(folder, adapter)

    def load(metrics):
        weights.load_into(model, files).eval()
        if adapter is not None:
            checkpoint.attach_adapter(model, adapter)
            checkpoint.check_vocab(model, tokenizer, adapter)
        if quantize == "int8":
            quantize_int8(model)
        _warm_up(model)
        scheduler = Scheduler(model, tokenizer, config.max_batch, config.max_queue, metrics).start()
        print("gpt serve: ready", flush=True)
        return Engine(model, tokenizer, template, scheduler, metrics)
    return load


def _warm_up(model):
    """One prefill and one batched step, so that the first request does not pay for compiling."""
    if model.config.block_size < 3:
        return
    cache = inference.KVCache(model.config, 2, dtype=model.dtype)
    inference.forward(model, np.zeros((1, 2), np.int64), cache, rows=[0])
    cache.copy_row(0, 1)
    inference.forward(model, np.zeros((2, 1), np.int64), cache)


def _bind(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose proto
    # is IPPROTO_TCP, and with it on every small SSE write waited ~40 ms for the client's ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _run(server, sock):
    """Serve in a thread; SIGTERM/SIGINT ask it to stop (a second Ctrl-C forces it)."""
    def stop(signum, frame):
        server.force_exit = server.should_exit and signum == signal.SIGINT
        server.should_exit = True
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="gpt-serve-http")
    try:
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
