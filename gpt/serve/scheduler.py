"""Continuous batching: a queue of requests, slots that are rows of one KV cache, one decode thread.

    scheduler = Scheduler(model, tokenizer, max_batch=8, max_queue=64)
    scheduler.start()
    scheduler.submit(Request(prompt_ids, Sampling(max_tokens=32), n=1, sink=callback))
    request.cancel()      # the client went away: its slots are free at the next step
    scheduler.stop()

Each turn of the decode thread:
1. admit: waiting requests take free slots, oldest first (n choices take n slots);
   cancelled ones leave the running batch and free theirs;
2. prefill: each admitted prompt fills one slot in a forward of its own (its shape does
   not depend on the batch), its other n-1 slots copy that row, and every choice draws
   its first token from those logits;
3. step: every running sequence advances by one token in ONE forward (inference.forward
   with T = 1 over their rows, each at its own position; batch-invariant, so a greedy
   answer is the same alone or among others); each draws with its own settings and
   generator; finished sequences free their slots for the next turn's admissions.

Events reach a request's sink from this thread, one list per request per flush (every
FLUSH_INTERVAL at most, or when the thread goes idle):
Delta(index, text, tokens), Finish(index, reason), Done(prompt_tokens,
completion_tokens), or Failed(message). The HTTP layer turns them into JSON.
"""
import collections
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

import minigrad
from minigrad import kernels
from minigrad.kernels.threads import one_blas_thread

from gpt import inference
from gpt.sample import choose
from gpt.serve.text import TextStream, token_text

log = logging.getLogger("gpt.serve")
# Events leave the decode thread at most this often (and at once when it goes idle): each
# flush wakes the HTTP side's event loop and hands it the GIL, which costs more than a small
# model's decoding step; 5 ms is too short for a reader to see and lets tokens travel in batches.
FLUSH_INTERVAL = 0.005
# BLAS_THREADS: the decode thread holds OpenBLAS to one thread. A prompt's forward is a GEMM of
# few rows; split over two BLAS threads it waits for both, and on a machine where other
# processes hold a core that wait cost 10-15x the work (a 6-token 124M prefill: ~1 s of CPU
# instead of ~0.08 s). Decoding steps do not use BLAS (kernels.linear_rowwise splits itself).


class QueueFull(Exception):
    """max_queue requests already wait."""


class ShuttingDown(Exception):
    """The scheduler is stopping and takes no new requests."""


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 16                 # new tokens per choice, before the context runs out
    temperature: float = 1.0             # 0: greedy
    top_p: float = 1.0                   # nucleus mass (1: off)
    top_k: int = 0                       # the k likeliest tokens only (0: off)
    seed: int = None                     # choice i draws from np.random.default_rng(seed + i)
    stop: tuple = ()                     # stop strings, not returned
    stop_ids: frozenset = frozenset()    # token ids that end a choice (end of text, end of turn)
    logprobs: int = None                 # None: none; k: the chosen token's and the k likeliest


@dataclass
class TokenInfo:
    id: int
    text: str
    logprob: float = None
    top: list = field(default_factory=list)   # [(text, id, logprob)], likeliest first


@dataclass
class Delta:
    index: int
    text: str
    tokens: list   # TokenInfo of the tokens whose text this is (with logprobs when asked)


@dataclass
class Finish:
    index: int
    reason: str    # "stop" or "length"


@dataclass
class Done:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Failed:
    message: str
    status: int = 500   # 503 when the server is shutting down


class Request:
    """One prompt, n choices. sink(list of events) is called from the decode thread."""

    def __init__(self, prompt_ids, sampling, n=1, sink=None, prompt_logprobs=False):
        self.prompt = [int(t) for t in prompt_ids]
        self.sampling, self.n, self.sink = sampling, n, sink
        self.prompt_logprobs = prompt_logprobs   # echo with logprobs: score the prompt too
        self.cancelled = False
        self.submitted = time.monotonic()
        self.first_token_at = None
        self.open_choices = n
        self.completion_tokens = 0
        self.events = []          # collected during a turn, sent at its end
        self.slots = []           # cache rows, once admitted

    def cancel(self):
        self.cancelled = True


class _Sequence:
    """One choice of a request, running in one slot."""

    def __init__(self, request, index, slot, limit, tokenizer):
        self.request, self.index, self.slot, self.limit = request, index, slot, limit
        seed = request.sampling.seed
        self.rng = np.random.default_rng(None if seed is None else seed + index)
        self.text = TextStream(tokenizer, request.sampling.stop)
        self.tokens = []
        self.held = []           # TokenInfo whose text is held back (a possible stop string)


class _NoMetrics:
    def __getattr__(self, name):
        return lambda *args: None


class Scheduler:
    def __init__(self, model, tokenizer, max_batch=8, max_queue=64, metrics=None):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_queue = max_batch, max_queue
        self.metrics = metrics or _NoMetrics()
        self.cache = inference.KVCache(model.config, max_batch, dtype=model.dtype)
        self.free = list(range(max_batch))
        self.running = {}                # slot -> _Sequence
        self.waiting = collections.deque()
        self.touched = {}                # id -> Request with events to send at the next flush
        self.flushed = 0.0               # when events were last sent
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="gpt-serve-decode", daemon=True)

    # ---- the HTTP side (event-loop thread) ---------------------------------------------------

    def start(self):
        self.thread.start()
        return self

    def submit(self, request):
        """Queue a request; QueueFull when it would have to wait behind max_queue others."""
        with self.cond:
            if self.stopping:
                raise ShuttingDown("the server is shutting down")
            claimed = sum(r.n for r in self.waiting) + request.n
            if claimed > len(self.free) and len(self.waiting) >= self.max_queue:
                raise QueueFull(f"{len(self.waiting)} requests are already waiting (--max-queue {self.max_queue})")
            self.waiting.append(request)
            self.metrics.on_queue(len(self.waiting), len(self.running))
            self.cond.notify()

    def stop(self, timeout=10.0):
        """Stop the decode thread; requests still queued or running get Failed."""
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout)

    def load(self):
        """(waiting requests, running sequences): for /metrics and 429s."""
        return len(self.waiting), len(self.running)

    # ---- the decode thread -------------------------------------------------------------------

    def _run(self):
        while True:
            admitted = self._admit()
            if admitted is None:
                break
            try:
                with one_blas_thread():  # see BLAS_THREADS below
                    for request in admitted:
                        self._prefill(request)
                    if self.running:
                        self._step()
            except Exception as e:  # a bug: fail the requests at hand, keep serving the next ones
                log.exception("decode step failed")
                self._fail(admitted + [s.request for s in self.running.values()],
                           f"internal error while decoding: {type(e).__name__}: {e}")
            if not self.running or time.monotonic() - self.flushed >= FLUSH_INTERVAL:
                self._flush()
        with self.cond:
            left = list(self.waiting) + [s.request for s in self.running.values()]
        self._fail(left, "the server is shutting down", status=503)

    def _admit(self):
        """Drop cancelled sequences, then move waiting requests into free slots (None: stop)."""
        for seq in [s for s in self.running.values() if s.request.cancelled]:
            self._release(seq, None)
        with self.cond:
            self.metrics.on_queue(len(self.waiting), len(self.running))
            while not (self.waiting or self.running or self.stopping):
                self.cond.wait()
            if self.stopping:
                return None
            self.waiting = collections.deque(r for r in self.waiting if not r.cancelled)
            admitted = []
            while self.waiting and self.waiting[0].n <= len(self.free):
                request = self.waiting.popleft()
                request.slots = [self.free.pop(0) for _ in range(request.n)]
                admitted.append(request)
            self.metrics.on_queue(len(self.waiting), len(self.running) + sum(r.n for r in admitted))
            return admitted

    def _prefill(self, request):
        """Fill the request's first slot with its prompt; the others copy it; first tokens."""
        first, prompt = request.slots[0], request.prompt
        self.cache.reset([first])
        logits = inference.forward(self.model, np.array([prompt]), self.cache, rows=[first])[0]
        for slot in request.slots[1:]:
            self.cache.copy_row(first, slot)
        if request.prompt_logprobs:
            self._emit(request, ("prompt", self._prompt_infos(request)))
        limit = min(request.sampling.max_tokens, self.model.config.block_size - len(prompt))
        for index, slot in enumerate(request.slots):
            seq = _Sequence(request, index, slot, limit, self.tokenizer)
            self.running[slot] = seq
            if limit <= 0:
                self._release(seq, "length")
        if limit > 0:
            seqs = [self.running[slot] for slot in request.slots]
            self._advance(seqs, np.repeat(logits[None], len(seqs), axis=0))

    def _step(self):
        """Every running sequence advances by one token, all in one forward."""
        slots = sorted(self.running)
        ids = np.array([[self.running[s].tokens[-1]] for s in slots])  # (n, 1)
        logits = inference.forward(self.model, ids, self.cache, rows=slots)  # (n, V)
        self._advance([self.running[s] for s in slots], logits)

    def _advance(self, seqs, logits):
        """Each sequence draws its next token from its row of logits (n, V) with its own
        generator, rows with the same settings in one call, and takes it."""
        logits = logits.astype(np.float64)
        logits[:, self.tokenizer.vocab_size:] = -np.inf  # padded vocabulary rows: no token
        tokens = np.empty(len(seqs), np.int64)
        groups = {}
        for i, seq in enumerate(seqs):
            s = seq.request.sampling
            groups.setdefault((s.temperature, s.top_k, s.top_p), []).append(i)
        for (temperature, top_k, top_p), rows in groups.items():
            tokens[rows] = choose(logits[rows], temperature == 0, temperature, top_k or None, top_p,
                                  [seqs[i].rng for i in rows])
        for seq, row, token in zip(seqs, logits, tokens):
            self._take(seq, row, int(token))
        self.metrics.on_tokens(len(seqs))

    def _take(self, seq, logits, token):
        """Append the token seq drew from logits (V,), send its text, finish seq if it ends."""
        request, s = seq.request, seq.request.sampling
        seq.tokens.append(token)
        request.completion_tokens += 1
        if request.first_token_at is None:
            request.first_token_at = time.monotonic()
            self.metrics.on_first_token(request.first_token_at - request.submitted)
        if token in s.stop_ids:
            return self._release(seq, "stop")
        seq.held.append(self._info(token, logits, s.logprobs))
        delta, stopped = seq.text.add(token)
        if stopped:  # the text before the stop string; tokens held back with it belong to it
            if delta:
                self._emit(request, Delta(seq.index, delta, []))
            return self._release(seq, "stop", flush=False)
        if delta:
            self._emit(request, Delta(seq.index, delta, seq.held))
            seq.held = []
        if len(seq.tokens) >= seq.limit:
            self._release(seq, "length")

    def _release(self, seq, reason, flush=True):
        """Free seq's slot; send what it held back, then Finish (reason None: cancelled, silent)."""
        request = seq.request
        del self.running[seq.slot]
        self.free.append(seq.slot)
        if reason is None:
            self.metrics.on_finished(time.monotonic() - request.submitted, "cancelled")
            return
        tail = seq.text.finish() if flush else ""
        if tail or (flush and seq.held):
            self._emit(request, Delta(seq.index, tail, seq.held))
        self._emit(request, Finish(seq.index, reason))
        request.open_choices -= 1
        if request.open_choices == 0:
            self._emit(request, Done(len(request.prompt), request.completion_tokens))
            self.metrics.on_finished(time.monotonic() - request.submitted, "done")

    def _info(self, token, logits, k):
        text = token_text(self.tokenizer, token)
        if k is None:
            return TokenInfo(token, text)
        logp = kernels.log_softmax_forward(logits)
        top = _likeliest(logp, k) if k else []
        return TokenInfo(token, text, float(logp[token]),
                         [(token_text(self.tokenizer, int(t)), int(t), float(logp[t])) for t in top])

    def _prompt_infos(self, request):
        """Each prompt token with its logprob given the tokens before it (the first has none)."""
        with minigrad.no_grad():
            logits = self.model(np.array([request.prompt]))[0].data[0].astype(np.float64)  # (T, V)
        infos = [TokenInfo(request.prompt[0], token_text(self.tokenizer, request.prompt[0]))]
        for t, token in enumerate(request.prompt[1:]):
            infos.append(self._info(token, logits[t], request.sampling.logprobs))
        return infos

    def _emit(self, request, event):
        request.events.append(event)
        self.touched[id(request)] = request

    def _flush(self):
        """Send each request the events gathered since the last flush, in one call."""
        self.flushed = time.monotonic()
        touched, self.touched = self.touched, {}
        for request in touched.values():
            events, request.events = request.events, []
            if not request.cancelled:
                request.sink(events)

    def _fail(self, requests, message, status=500):
        """End these requests with Failed and free their slots (running or only just assigned)."""
        for request in {id(r): r for r in requests}.values():
            for slot in request.slots:
                seq = self.running.get(slot)
                if seq is not None and seq.request is request:
                    self._release(seq, None)
                elif seq is None and slot not in self.free:
                    self.free.append(slot)
            request.events = []
            request.cancelled = True
            if request.sink is not None:
                request.sink([Failed(message, status)])
        with self.cond:
            self.waiting = collections.deque(r for r in self.waiting if r not in requests)


def _likeliest(logp, k):
    """The k likeliest ids of logp (V,), likeliest first, ties in id order (a stable argsort of
    -logp, cut to k), in O(V): only the ids at or above the k-th largest value are sorted."""
    if k >= logp.size:
        return np.argsort(-logp, kind="stable")
    candidates = np.flatnonzero(logp >= np.partition(logp, -k)[-k])
    return candidates[np.argsort(-logp[candidates], kind="stable")][:k]
