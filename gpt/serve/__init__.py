"""`gpt serve`: a checkpoint behind an OpenAI-compatible HTTP API, with continuous batching.

    server.py     the command: check the checkpoint, bind, load in the background, signals
    flags.py      its flags: address, API key, limits
    api.py        the FastAPI app: routes, streaming (server-sent events), error objects
    gate.py       API key, body size and loading checks in front of every request
    handlers.py   each endpoint's checks, prompts to token ids, scheduler requests
    replies.py    scheduler events to OpenAI's response and chunk objects
    protocol.py   request schemas and response shapes
    scheduler.py  the queue, the slots (KV-cache rows) and the decode thread
    text.py       incremental UTF-8 and stop strings
    metrics.py    Prometheus counters for /metrics
    static/       the web page at /

scheduler.py and text.py need only numpy; the rest needs the `serve` extra
(pip install 'minigrad-gpt[serve]'), which plain `gpt train` never imports.
"""
