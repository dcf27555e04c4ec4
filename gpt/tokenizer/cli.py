"""`gpt tokenizer ...`: train, encode, decode and measure tokenizers from the command line.

    gpt tokenizer train  --data FILE --vocab-size N --out PATH [--pattern gpt2|cl100k|REGEX]
                         [--special TOKEN ...] [--char]
    gpt tokenizer encode --tokenizer PATH [--data FILE]     (text from FILE or stdin; ids out)
    gpt tokenizer decode --tokenizer PATH [--data FILE]     (ids from FILE or stdin; text out)
    gpt tokenizer stats  --tokenizer PATH --data FILE       (bytes per token, speed)

Inputs are `--data` and `--tokenizer` here as in `gpt train` and `gpt eval`; errors are
reported by gpt/cli.py as one `error: ...` line.
"""
import sys
import time

from gpt.errors import DataError, TokenizerError
from gpt.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer


def add_subcommand(subparsers, guard):
    """Register `tokenizer` and its leaf commands; guard(fn) wraps each in the CLI's error handling."""
    parser = subparsers.add_parser("tokenizer", help="train, use and measure tokenizers")
    sub = parser.add_subparsers(dest="tokenizer_command", required=True)

    train = sub.add_parser("train", help="train a byte-level BPE (or char) tokenizer on a text file")
    train.add_argument("--data", "--input", dest="data", required=True,
                       help="UTF-8 training text (--input: the flag's earlier name)")
    train.add_argument("--vocab-size", type=int, required=True, help="256 + merges + special tokens")
    train.add_argument("--out", required=True, help="where to write the tokenizer file")
    train.add_argument("--pattern", default="gpt2", help="gpt2, cl100k or a custom regex")
    train.add_argument("--special", nargs="*", default=[], metavar="TOKEN", help="special tokens")
    train.add_argument("--char", action="store_true", help="train a character-level tokenizer instead")
    train.add_argument("--quiet", action="store_true", help="no progress on stderr")
    train.set_defaults(func=guard(cmd_train))

    encode = sub.add_parser("encode", help="encode text, print ids")
    encode.add_argument("--tokenizer", required=True, help="tokenizer file or Hugging Face folder")
    encode.add_argument("--data", default=None, help="UTF-8 text to encode (default: stdin)")
    encode.add_argument("--allow-special", action="store_true",
                        help="encode special-token text as special tokens (default: error)")
    encode.set_defaults(func=guard(cmd_encode))

    decode = sub.add_parser("decode", help="decode whitespace-separated ids, print text")
    decode.add_argument("--tokenizer", required=True, help="tokenizer file or Hugging Face folder")
    decode.add_argument("--data", default=None, help="file of ids (default: stdin)")
    decode.set_defaults(func=guard(cmd_decode))

    stats = sub.add_parser("stats", help="bytes per token and speed on a file")
    stats.add_argument("--tokenizer", required=True, help="tokenizer file or Hugging Face folder")
    stats.add_argument("--data", required=True, help="UTF-8 text to measure on")
    stats.set_defaults(func=guard(cmd_stats))
    return parser


def _read_text(path):
    if path is None:
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8", newline="") as f:  # the text as it is: \r\n stays
            return f.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at byte offset {e.start} ({e.reason})") from None


def cmd_train(args):
    text = _read_text(args.data)
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
    ids = tok.encode(_read_text(args.data), allowed_special=allowed)
    print(" ".join(map(str, ids)))
    return 0


def cmd_decode(args):
    tok = load_tokenizer(args.tokenizer)
    words = _read_text(args.data).split()
    try:
        ids = [int(w) for w in words]
    except ValueError as e:
        raise TokenizerError(f"ids must be integers: {e}") from None
    sys.stdout.write(tok.decode(ids))
    return 0


def cmd_stats(args):
    tok = load_tokenizer(args.tokenizer)
    text = _read_text(args.data)
    n_bytes = len(text.encode("utf-8"))
    start = time.perf_counter()
    ids = tok.encode(text, disallowed_special=())
    seconds = time.perf_counter() - start
    ratio = n_bytes / max(1, len(ids))
    print(f"{args.data}: {n_bytes} bytes, {len(ids)} tokens, {ratio:.3f} bytes/token, "
          f"{n_bytes / seconds / 1e6:.2f} MB/s (vocab_size {tok.vocab_size})")
    return 0
