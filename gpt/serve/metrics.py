"""/metrics: the server's counters in Prometheus' text format (prometheus_client, own registry).

    gpt_requests_total{endpoint, status}        HTTP requests answered
    gpt_prompt_tokens_total                     prompt tokens read
    gpt_generation_tokens_total                 tokens generated
    gpt_generation_tokens_per_second            over the last WINDOW seconds
    gpt_queue_length                            requests waiting for a slot
    gpt_batch_size                              sequences in the running batch
    gpt_batch_slots                             --max-batch
    gpt_time_to_first_token_seconds             histogram, from arrival to the first token
    gpt_request_duration_seconds{outcome}       histogram, from arrival to the end (done, cancelled)

The scheduler calls the on_* methods from its decode thread; prometheus_client's
metrics are thread-safe.
"""
import collections
import threading
import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)

WINDOW = 10.0   # seconds of history behind the tokens/s gauge
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, slots):
        disable_created_metrics()  # no *_created series beside each counter: clutter for a single server
        self.registry = r = CollectorRegistry()
        self.requests = Counter("gpt_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("gpt_prompt_tokens", "prompt tokens read", registry=r)
        self.tokens = Counter("gpt_generation_tokens", "tokens generated", registry=r)
        self.rate = Gauge("gpt_generation_tokens_per_second", f"tokens generated per second over the "
                                                               f"last {WINDOW:g} s", registry=r)
        self.queue = Gauge("gpt_queue_length", "requests waiting for a slot", registry=r)
        self.batch = Gauge("gpt_batch_size", "sequences in the running batch", registry=r)
        Gauge("gpt_batch_slots", "most sequences decoded together (--max-batch)", registry=r).set(slots)
        self.ttft = Histogram("gpt_time_to_first_token_seconds", "from arrival to the first token",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.duration = Histogram("gpt_request_duration_seconds", "from arrival to the last token",
                                  ["outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.rate.set_function(self._rate)
        self._recent = collections.deque()   # (time, tokens) of recent decode turns
        self._lock = threading.Lock()

    # ---- from the HTTP side ----

    def on_response(self, endpoint, status):
        self.requests.labels(endpoint, str(status)).inc()

    def on_prompt(self, n_tokens):
        self.prompt_tokens.inc(n_tokens)

    def render(self):
        return generate_latest(self.registry)

    # ---- from the scheduler ----

    def on_queue(self, waiting, running):
        self.queue.set(waiting)
        self.batch.set(running)

    def on_tokens(self, n_tokens):
        self.tokens.inc(n_tokens)
        now = time.monotonic()
        with self._lock:
            self._recent.append((now, n_tokens))
            self._forget(now)  # kept bounded even when nobody scrapes /metrics

    def on_first_token(self, seconds):
        self.ttft.observe(seconds)

    def on_finished(self, seconds, outcome):
        self.duration.labels(outcome).observe(seconds)

    def _rate(self):
        with self._lock:
            self._forget(time.monotonic())
            return sum(n for _, n in self._recent) / WINDOW

    def _forget(self, now):
        while self._recent and self._recent[0][0] < now - WINDOW:
            self._recent.popleft()
