"""`gpt serve` as a process: SIGTERM ends it gracefully with status 0; a checkpoint that cannot
load, a busy port or a missing extra end it with a clear message before it listens; plain
`gpt` never imports the serving stack."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

from serve_helpers import REPO, make_checkpoint, serving_stack, start_process


@pytest.fixture(scope="module")
def httpx():
    return serving_stack()[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt"), block_size=512)


def wait_ready(httpx, url, proc, timeout=120):
    for _ in range(int(timeout / 0.1)):
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read()
        threading.Event().wait(0.1)
    raise TimeoutError("the server never became ready")


def test_sigterm_stops_accepting_ends_in_flight_requests_and_exits_0(httpx, folder):
    proc, url = start_process("--ckpt", folder, "--shutdown-timeout", "3")
    try:
        assert url, proc.stderr.read()
        wait_ready(httpx, url, proc)
        got = []

        def stream():  # a long answer, cut short by the shutdown or finished within its grace
            body = {"prompt": "Where the bee", "max_tokens": 500, "stream": True, "ignore_eos": True}
            try:
                with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as r:
                    for line in r.iter_lines():
                        got.append(line)
            except httpx.TransportError:
                got.append("cut")
        t = threading.Thread(target=stream)
        t.start()
        for _ in range(600):  # the request is being answered
            if any(line.startswith("data: {") for line in got):
                break
            threading.Event().wait(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        t.join(30)
        assert got and (got[-1] in ("cut", "") or "[DONE]" in got)
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def bad_checkpoints(folder, tmp):
    missing = os.path.join(tmp, "nothing-here")
    truncated = shutil.copytree(folder, os.path.join(tmp, "truncated"))
    path = os.path.join(truncated, "model.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    bad_config = shutil.copytree(folder, os.path.join(tmp, "bad-config"))
    with open(os.path.join(bad_config, "config.json"), "w") as f:
        json.dump({"n_embd": 30, "n_head": 4, "vocab_size": 300}, f)
    no_tokenizer = shutil.copytree(folder, os.path.join(tmp, "no-tokenizer"))
    os.remove(os.path.join(no_tokenizer, "tokenizer.txt"))
    return [(missing, "nothing-here"), (truncated, "model.safetensors"), (bad_config, "config.json"),
            (no_tokenizer, "no tokenizer")]


def test_a_checkpoint_that_cannot_load_is_refused_before_binding(httpx, folder, tmp_path):
    from gpt.serve.api import ServeConfig
    from gpt.serve.server import preflight
    cases = bad_checkpoints(folder, str(tmp_path))
    for path, mentioned in cases:  # every check runs before the port is bound...
        with pytest.raises((ValueError, FileNotFoundError), match=mentioned):
            preflight(path, None, ServeConfig())
    proc, url = start_process("--ckpt", cases[1][0])  # ...so the command exits 2 without listening
    out, err = proc.communicate(timeout=120)
    assert url is None and proc.returncode == 2, (out, err)
    assert err.startswith("error: ") and "model.safetensors" in err and "Traceback" not in err, err


def test_a_busy_port_or_bad_flag_is_a_clear_error(httpx, folder):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "gpt.cli", "serve", "--ckpt", folder, "--port", str(port)],
                             capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    out = subprocess.run([sys.executable, "-m", "gpt.cli", "serve", "--ckpt", folder, "--max-batch", "0"],
                         capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 2 and "--max-batch must be >= 1" in out.stderr


def test_without_the_serve_extra_the_error_names_the_pip_install():
    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from gpt.cli import main\nsys.exit(main(['serve', '--ckpt', 'x']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: gpt serve needs the serve extra (fastapi is missing): "
                                  "pip install 'minigrad-gpt[serve]'")


def test_the_gpt_command_does_not_import_the_serving_stack():
    code = ("import sys, gpt.cli; gpt.cli.build_parser()\n"
            "loaded = [m for m in ('fastapi', 'uvicorn', 'starlette', 'sse_starlette', 'prometheus_client') "
            "if m in sys.modules]\nassert not loaded, loaded")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr


def test_connections_to_the_listening_socket_have_nagle_off(httpx):
    """asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; without it each small
    streamed chunk waited ~40 ms for the client's delayed ACK (every request took ~45 ms)."""
    import asyncio
    from gpt.serve.server import _bind
    sock = _bind("127.0.0.1", 0)
    nodelay = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            conn = transport.get_extra_info("socket")
            nodelay.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def main():
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(100):
            if nodelay:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
    asyncio.run(main())
    assert nodelay and nodelay[0] != 0


def test_a_bad_adapter_folder_stops_before_binding(httpx, folder, tmp_path):
    from gpt.serve.api import ServeConfig
    from gpt.serve.server import preflight
    with pytest.raises(ValueError, match="no adapter_config.json"):
        preflight(folder, str(tmp_path), ServeConfig())
    (tmp_path / "adapter_config.json").write_text('{"peft_type": "PREFIX_TUNING"}')
    with pytest.raises(ValueError, match="only LORA adapters"):
        preflight(folder, str(tmp_path), ServeConfig())


def test_an_adapter_is_served_as_checkpoint_load_applies_it(httpx, folder, tmp_path):
    import numpy as np
    from gpt import checkpoint, lora
    from gpt.sample import generate
    from serve_helpers import LiveServer
    model, tok, _ = checkpoint.load(folder)
    spec = lora.AdapterConfig(r=4, alpha=8, targets=["c_attn", "c_fc"], base=str(folder))
    lora.apply_lora(model, spec)
    rng = np.random.default_rng(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero; give the adapter something to say
            p.data[...] = 0.5 * rng.standard_normal(p.shape)
    lora.save_adapter(model, spec, str(tmp_path))
    adapted, _, _ = checkpoint.load(folder, str(tmp_path))
    base, _, _ = checkpoint.load(folder)
    ids = tok.encode("Where the bee")
    want = tok.decode(generate(adapted.eval(), ids, 12, do_sample=False)[0][len(ids):])
    assert want != tok.decode(generate(base.eval(), ids, 12, do_sample=False)[0][len(ids):])
    with LiveServer(folder, adapter=str(tmp_path)) as s:
        r = httpx.post(s.url + "/v1/completions", json={"prompt": "Where the bee", "max_tokens": 12,
                                                         "temperature": 0, "ignore_eos": True}, timeout=60)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == want
