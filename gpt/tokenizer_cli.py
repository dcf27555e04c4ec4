"""`gpt tokenizer ...`: train, encode, decode and measure tokenizers from the command line.

    gpt tokenizer train --input FILE --vocab-size N --out PATH [--pattern gpt2|cl100k|REGEX]
                        [--special TOKEN ...] [--char]
    gpt tokenizer encode --tokenizer PATH        < text     (ids out, space-separated)
    gpt tokenizer decode --tokenizer PATH        < ids      (text out)
    gpt tokenizer stats  --tokenizer PATH FILE             (bytes per token)

Errors from bad input (TokenizerError, a ValueError) print one line and exit 2.
"""
import sys
import time

from gpt.char_tokenizer import CharTokenizer
from gpt.tokenizer import BPETokenizer
from gpt.tokenizer_errors import TokenizerError
from gpt.tokenizer_io import load_tokenizer


def add_subcommand(subparsers):
    """Register `tokenizer` and its leaf commands on an argparse subparsers object."""
    parser = subparsers.add_parser("tokenizer", help="train, use and measure tokenizers")
    sub = parser.add_subparsers(dest="tokenizer_command", required=True)

    train = sub.add_parser("train", help="train a byte-level BPE (or char) tokenizer on a text file")
    train.add_argument("--input", required=True, help="UTF-8 training text")
    train.add_argument("--vocab-size", type=int, required=True, help="256 + merges + special tokens")
    train.add_argument("--out", required=True, help="where to write the tokenizer file")
    train.add_argument("--pattern", default="gpt2", help="gpt2, cl100k or a custom regex")
    train.add_argument("--special", nargs="*", default=[], metavar="TOKEN", help="special tokens")
    train.add_argument("--char", action="store_true", help="train a character-level tokenizer instead")
    train.add_argument("--quiet", action="store_true", help="no progress on stderr")
    train.set_defaults(func=_guarded(cmd_train))

    encode = sub.add_parser("encode", help="encode stdin, print ids")
    encode.add_argument("--tokenizer", required=True)
    encode.add_argument("--allow-special", action="store_true",
                        help="encode special-token text as special tokens (default: error)")
    encode.set_defaults(func=_guarded(cmd_encode))

    decode = sub.add_parser("decode", help="decode whitespace-separated ids on stdin")
    decode.add_argument("--tokenizer", required=True)
    decode.set_defaults(func=_guarded(cmd_decode))

    stats = sub.add_parser("stats", help="bytes per token and speed on a file")
    stats.add_argument("--tokenizer", required=True)
    stats.add_argument("file")
    stats.set_defaults(func=_guarded(cmd_stats))
    return parser


def _guarded(command):
    """Turn our clear errors into a one-line message and exit status 2."""
    def run(args):
        try:
            return command(args)
        except (TokenizerError, OSError, UnicodeDecodeError) as e:
            print(f"gpt tokenizer: error: {e}", file=sys.stderr)
            return 2
    return run


def _read_text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def cmd_train(args):
    text = _read_text(args.input)
    start = time.perf_counter()
    if args.char:
        tok = CharTokenizer().train(text, args.vocab_size)
    else:
        tok = BPETokenizer(pattern=args.pattern).train(
            text, args.vocab_size, special_tokens=args.special, verbose=not args.quiet)
    tok.save(args.out)
    print(f"trained {tok!r} in {time.perf_counter() - start:.2f}s -> {args.out}", file=sys.stderr)
    return 0


def cmd_encode(args):
    tok = load_tokenizer(args.tokenizer)
    allowed = "all" if args.allow_special else "none"
    ids = tok.encode(sys.stdin.read(), allowed_special=allowed)
    print(" ".join(map(str, ids)))
    return 0


def cmd_decode(args):
    tok = load_tokenizer(args.tokenizer)
    words = sys.stdin.read().split()
    try:
        ids = [int(w) for w in words]
    except ValueError as e:
        raise TokenizerError(f"ids on stdin must be integers: {e}") from None
    sys.stdout.write(tok.decode(ids))
    return 0


def cmd_stats(args):
    tok = load_tokenizer(args.tokenizer)
    text = _read_text(args.file)
    n_bytes = len(text.encode("utf-8"))
    start = time.perf_counter()
    ids = tok.encode(text, disallowed_special=())
    seconds = time.perf_counter() - start
    ratio = n_bytes / max(1, len(ids))
    print(f"{args.file}: {n_bytes} bytes, {len(ids)} tokens, {ratio:.3f} bytes/token, "
          f"{n_bytes / seconds / 1e6:.2f} MB/s (vocab_size {tok.vocab_size})")
    return 0
