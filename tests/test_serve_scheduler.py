"""gpt/serve/scheduler.py without HTTP: continuous batching (requests join a running batch and
leave it), n choices from one prefill, cancellation, the queue limit, a failing request that
does not take the others down, and stop()."""
import threading
import time

import pytest

from serve_helpers import make_checkpoint

from gpt import checkpoint, inference
from gpt.sample import generate
from gpt.serve.scheduler import Delta, Done, Failed, Finish, QueueFull, Request, Sampling, Scheduler, ShuttingDown


@pytest.fixture(scope="module")
def model_tok(tmp_path_factory):
    model, tok, _ = checkpoint.load(make_checkpoint(tmp_path_factory.mktemp("ckpt")))
    return model, tok


class Collector:
    """A sink that keeps a request's events and says when it is over."""

    def __init__(self):
        self.events, self.over = [], threading.Event()

    def __call__(self, events):
        self.events += events
        if any(isinstance(e, (Done, Failed)) for e in events):
            self.over.set()

    def text(self, index=0):
        return "".join(e.text for e in self.events if isinstance(e, Delta) and e.index == index)

    def wait(self):
        assert self.over.wait(60), "the request never finished"
        return self


def submit(scheduler, tok, prompt, **sampling):
    n = sampling.pop("n", 1)
    sink = Collector()
    scheduler.submit(Request(tok.encode(prompt), Sampling(**sampling), n=n, sink=sink))
    return sink


def test_requests_join_and_leave_a_running_batch(model_tok, monkeypatch):
    model, tok = model_tok
    sizes = []
    real = inference.forward
    monkeypatch.setattr(inference, "forward", lambda m, ids, cache=None, rows=None: sizes.append(
        (len(ids), ids.shape[1])) or time.sleep(0.005) or real(m, ids, cache, rows))
    s = Scheduler(model, tok, max_batch=3).start()
    try:
        long = submit(s, tok, "Merrily", max_tokens=40, temperature=0)
        time.sleep(0.05)  # the first one runs alone a few steps, then three more arrive
        short = [submit(s, tok, p, max_tokens=5, temperature=0) for p in ("I", "summer", "bee")]
        for sink in [long] + short:
            sink.wait()
    finally:
        s.stop()
    steps = [n for n, t in sizes if t == 1]
    assert 1 in steps[:3] and max(steps) == 3  # alone at first, then a full batch of 3
    assert s.load() == (0, 0) and sorted(s.free) == [0, 1, 2]
    for sink, prompt, n in [(long, "Merrily", 40)] + list(zip(short, ("I", "summer", "bee"), [5] * 3)):
        ids = tok.encode(prompt)  # no stop tokens given: every token counts, as in generate
        assert sink.text() == tok.decode(generate(model, ids, n, do_sample=False)[0][len(ids):])


def test_n_choices_share_one_prefill_and_draw_from_seed_plus_index(model_tok):
    model, tok = model_tok
    s = Scheduler(model, tok, max_batch=4).start()
    try:
        sink = submit(s, tok, "Where the bee", max_tokens=12, temperature=1.0, seed=5, n=3).wait()
    finally:
        s.stop()
    ids = tok.encode("Where the bee")
    for i in range(3):
        assert sink.text(i) == tok.decode(generate(model, ids, 12, seed=5 + i)[0][len(ids):])
    assert sorted(e.index for e in sink.events if isinstance(e, Finish)) == [0, 1, 2]
    done = [e for e in sink.events if isinstance(e, Done)]
    assert len(done) == 1 and done[0].prompt_tokens == len(ids)


def test_the_queue_limit_and_cancelling_a_waiting_request(model_tok, monkeypatch):
    model, tok = model_tok
    gate = threading.Event()
    real = inference.forward
    monkeypatch.setattr(inference, "forward", lambda *a, **k: gate.wait(30) and real(*a, **k))
    s = Scheduler(model, tok, max_batch=1, max_queue=1).start()
    try:
        running = submit(s, tok, "I", max_tokens=3, temperature=0)  # takes the slot, blocks in its forward
        time.sleep(0.1)
        waiting = Request(tok.encode("I"), Sampling(max_tokens=3), sink=Collector())
        s.submit(waiting)
        with pytest.raises(QueueFull):
            s.submit(Request(tok.encode("I"), Sampling(max_tokens=3), sink=Collector()))
        waiting.cancel()  # gone before its turn: it never runs
        gate.set()
        running.wait()
        time.sleep(0.1)
        assert not waiting.sink.events and s.load() == (0, 0)
    finally:
        gate.set()
        s.stop()


def test_a_failing_request_does_not_take_the_others_down(model_tok, monkeypatch):
    model, tok = model_tok
    real = inference.forward

    def fussy(m, ids, cache=None, rows=None):
        if ids.shape[1] == 7:  # the prefill of a 7-token prompt fails
            raise RuntimeError("injected")
        return real(m, ids, cache, rows)
    monkeypatch.setattr(inference, "forward", fussy)
    s = Scheduler(model, tok, max_batch=2).start()
    try:
        bad_prompt = next(p for p in ("Where the bee sucks", "Where the bee", "Merrily, merrily shall")
                          if len(tok.encode(p)) == 7)
        bad = submit(s, tok, bad_prompt, max_tokens=5).wait()
        good = submit(s, tok, "I", max_tokens=5, temperature=0).wait()
    finally:
        s.stop()
    failed = [e for e in bad.events if isinstance(e, Failed)]
    assert failed and failed[0].status == 500 and "injected" in failed[0].message
    assert any(isinstance(e, Done) for e in good.events) and sorted(s.free) == [0, 1]


def test_stop_fails_what_is_left_and_refuses_new_requests(model_tok, monkeypatch):
    model, tok = model_tok
    real = inference.forward
    monkeypatch.setattr(inference, "forward", lambda *a, **k: time.sleep(0.01) or real(*a, **k))
    s = Scheduler(model, tok, max_batch=1).start()
    sink = submit(s, tok, "I", max_tokens=90, temperature=0)
    time.sleep(0.05)
    s.stop()
    assert not s.thread.is_alive()
    assert [e.status for e in sink.wait().events if isinstance(e, Failed)] == [503]
    with pytest.raises(ShuttingDown):
        s.submit(Request([1], Sampling(), sink=Collector()))
