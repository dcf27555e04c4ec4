"""`gpt serve` end to end, slow: the web page in headless Chromium (type a prompt, press the
button, watch streamed text and tokens/s appear), and a bounded load of concurrent streaming
clients on 127.0.0.1 (every answer complete and equal to its answer alone, no slot left held)."""
import json
import shutil
import tempfile
import threading
import time

import pytest

from conftest import require
from serve_helpers import MODEL_NAME, LiveServer, make_checkpoint, serving_stack

from gpt import inference

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serving_stack()
    with LiveServer(make_checkpoint(tmp_path_factory.mktemp("ckpt"), block_size=256), max_batch=4) as s:
        yield s


def browser():
    """Debian's chromium driven by selenium through Debian's chromedriver, headless, offline."""
    webdriver = require("selenium.webdriver")
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            pytest.fail(f"{path} is missing: apt-get install -y chromium chromium-driver (see .ci/run)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="gpt-serve-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service), profile


def test_the_page_streams_an_answer_in_a_real_browser(server, monkeypatch):
    real_forward = inference.forward
    monkeypatch.setattr(inference, "forward", lambda *a, **k: time.sleep(0.02) or real_forward(*a, **k))
    wait_mod = require("selenium.webdriver.support.wait")
    by = require("selenium.webdriver.common.by").By
    driver, profile = browser()
    try:
        driver.set_page_load_timeout(60)
        driver.get(server.url + "/")
        wait = wait_mod.WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(by.ID, "model").text == MODEL_NAME)
        box = driver.find_element(by.ID, "prompt")
        box.clear()
        box.send_keys("Where the bee")
        driver.find_element(by.ID, "max_tokens").clear()
        driver.find_element(by.ID, "max_tokens").send_keys("40")
        driver.execute_script("window.changes = 0; new MutationObserver(() => window.changes++).observe("
                              "document.getElementById('output'), {subtree: true, characterData: true})")
        driver.find_element(by.ID, "generate").click()
        wait.until(lambda d: "finished" in d.find_element(by.ID, "status").text)
        output = driver.find_element(by.ID, "output").text
        status = driver.find_element(by.ID, "status").text
        assert output.startswith("Where the bee") and len(output) > len("Where the bee"), output
        assert "tokens/s" in status and driver.find_element(by.ID, "error").text == "", status
        assert driver.execute_script("return window.changes") > 5  # the text grew piece by piece
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_concurrent_streaming_clients_all_complete_and_match_their_answer_alone(server):
    """8 clients x 3 streamed greedy requests each (bounded: 24 requests, 40 tokens each)."""
    httpx = require("httpx")
    prompts = ["Where the bee", "Merrily", "def main(", "summer", "I", "blossom", "there I couch", "bat"]

    def ask(prompt, stream):
        body = {"prompt": prompt, "max_tokens": 40, "temperature": 0, "ignore_eos": True, "stream": stream,
                "stream_options": {"include_usage": True}}
        if not stream:
            return httpx.post(server.url + "/v1/completions", json=body, timeout=120).json()["choices"][0]["text"], 40
        text, usage = [], None
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    text += [c["text"] for c in chunk["choices"]]
                    usage = chunk.get("usage") or usage
        return "".join(text), usage["completion_tokens"]

    alone = {p: ask(p, stream=False)[0] for p in prompts}
    results, errors = [], []

    def client(i):
        try:
            for k in range(3):
                p = prompts[(i + k) % len(prompts)]
                results.append((p,) + ask(p, stream=True))
        except Exception as e:  # reported below, with the others
            errors.append(e)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(results) == 24
    for p, text, n_tokens in results:
        assert text == alone[p] and n_tokens == 40
    server.wait_until(lambda: server.engine.scheduler.load() == (0, 0), "every slot to be free", 10)
