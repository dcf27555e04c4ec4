"""`gpt serve`'s own flags: where it listens and the limits it keeps (argparse only, so the
CLI lists them without the serve extra installed)."""


def add_server_flags(p):
    """The listening address, the API key and the limits; gpt/cli.py adds --ckpt and the
    model's flags (--adapter, --quantize)."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this "
                                                       "machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every endpoint "
                                                   "but /health and the page")
    p.add_argument("--model-name", default=None, help="the model's id in the API (default: the folder's name)")
    p.add_argument("--max-batch", type=int, default=8, help="sequences decoded together (default: 8)")
    p.add_argument("--max-queue", type=int, default=64, help="requests that may wait for a free slot; "
                                                             "more get 429 (default: 64)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body "
                                                                       "(default: 1048576)")
    p.add_argument("--max-tokens-limit", type=int, default=4096, help="largest max_tokens a request may "
                                                                      "ask for (default: 4096)")
    p.add_argument("--shutdown-timeout", type=float, default=10.0, help="seconds in-flight requests get "
                                                                         "to finish after SIGTERM (default: 10)")
    p.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
                   help="uvicorn's log level; info also logs each request (default: warning)")
