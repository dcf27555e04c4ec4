"""The `gpt` command: one subcommand per job of the pipeline.

    gpt train                                   # the default preset on CPython's own docs
    gpt train --preset shakespeare-char --data input.txt --out runs/shakespeare
    gpt train --resume --out runs/shakespeare --max-iters 4000
    gpt sample --ckpt runs/shakespeare --prompt "ROMEO:" --stream
    gpt eval --ckpt runs/shakespeare --data heldout.txt
    gpt tokenizer train --data input.txt --vocab-size 4096 --out tok.txt

Inputs are named the same way everywhere: --data (text), --ckpt (a checkpoint or
run folder), --tokenizer (a tokenizer file), --out (what is written). Errors in
the user's input print one `error: ...` line and exit 2; a non-finite loss exits
1; Ctrl-C saves and exits 130; an unknown flag is reported with its subcommand's
usage.
"""
import argparse
import codecs
import math
import sys

import numpy as np

import minigrad
from minigrad.nn.state import StateFileError

from gpt import checkpoint, data, evaluate
from gpt.config import TrainConfig, add_flags, build_config, explicit_flags
from gpt.errors import CheckpointError, ConfigError, DataError, NonFiniteLossError, TokenizerError
from gpt.quantize import quantize_int8
from gpt.sample import generate, stream
from gpt.tokenizer import cli as tokenizer_cli, load_tokenizer
from gpt.train import train


def build_parser():
    parser = argparse.ArgumentParser(prog="gpt", description="Train, evaluate and sample small GPTs on minigrad.")
    sub = parser.add_subparsers(dest="command", required=True)
    tokenizer_cli.add_subcommand(sub, guarded)
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    return parser


def _add_train(sub):
    p = sub.add_parser("train", help="train a GPT (a bare `gpt train` runs a ~2 minute demo)",
                       description="Train a GPT. Values come from the dataclass defaults, then "
                                   "--preset, then the flags you type.")
    add_flags(p)
    p.set_defaults(func=guarded(cmd_train))


def _add_sample(sub):
    p = sub.add_parser("sample", help="generate text from a checkpoint")
    p.add_argument("--ckpt", required=True, help="checkpoint folder, run folder or Hugging Face GPT-2 folder")
    p.add_argument("--tokenizer", default=None, help="tokenizer file or folder, for a checkpoint "
                                                     "without one (default: the checkpoint's)")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default=None, help="text to continue (default: a newline); special "
                                                        "tokens such as <|endoftext|> count as such")
    prompt.add_argument("--prompt-file", default=None, help="read the prompt from this UTF-8 file")
    p.add_argument("--max-new-tokens", type=int, default=300, help="tokens to generate (default: 300)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass, e.g. 0.9")
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (default: 1)")
    p.add_argument("--seed", type=int, default=None, help="make sampling repeatable")
    p.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    _add_quantize(p)
    p.set_defaults(func=guarded(cmd_sample))


def _add_eval(sub):
    p = sub.add_parser("eval", help="loss, perplexity and bits per byte of a checkpoint on a text")
    p.add_argument("--ckpt", required=True, help="checkpoint folder or run folder")
    p.add_argument("--data", required=True, help="UTF-8 text file or folder of .txt files")
    p.add_argument("--stride", type=int, default=None,
                   help="window step in tokens (default: block_size, non-overlapping windows); "
                        "smaller scores each token with more context, and costs more")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward (default: 8)")
    p.add_argument("--errors", choices=("strict", "replace"), default=None,
                   help="invalid UTF-8 handling (default: the training run's)")
    _add_quantize(p)
    p.set_defaults(func=guarded(cmd_eval))


def _add_quantize(p):
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="int8: weight-only int8 matmuls (per-output-channel scales; gpt/quantize.py), "
                        "about 4x less memory to read per token")


def _quantized(model, args):
    return quantize_int8(model) if args.quantize == "int8" else model


def guarded(command):
    """Our clear errors become one line on stderr and a non-zero status, never a traceback."""
    def run(args):
        try:
            return command(args)
        except NonFiniteLossError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except (DataError, ConfigError, CheckpointError, TokenizerError, StateFileError,
                FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
    return run


# ---- train -------------------------------------------------------------------------------

def cmd_train(args):
    explicit = explicit_flags(args)
    if explicit.get("resume") and not explicit.get("out"):
        raise ConfigError("--resume needs --out, the run folder to continue")
    train(build_config(dict(explicit)), explicit=explicit)
    return 0


# ---- sample ------------------------------------------------------------------------------

def _prompt_ids(args, tokenizer):
    if args.prompt_file:
        text = data.read_text_file(args.prompt_file)
    else:
        text = args.prompt if args.prompt is not None else "\n"
    try:  # GPT-2's unconditional prompt is <|endoftext|>: special tokens in a prompt are meant
        ids = tokenizer.encode(text, allowed_special="all")
    except TokenizerError as e:
        raise DataError(f"cannot encode the prompt with this checkpoint's tokenizer: {e}") from None
    return ids or [0]


def _model_and_tokenizer(args):
    """The checkpoint's model with its own tokenizer, or with --tokenizer when given."""
    if args.tokenizer is None:
        return checkpoint.load(args.ckpt)[:2]
    model, tokenizer = checkpoint.load_model(args.ckpt), load_tokenizer(args.tokenizer)
    checkpoint.check_vocab(model, tokenizer, args.tokenizer)
    return model, tokenizer


def cmd_sample(args):
    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise ConfigError("--max-new-tokens must be >= 0 and --num-samples >= 1")
    model, tokenizer = _model_and_tokenizer(args)
    model = _quantized(model, args)
    ids = _prompt_ids(args, tokenizer)
    kw = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    for n in range(args.num_samples):
        seed = None if args.seed is None else args.seed + n
        if n:
            print("\n" + "-" * 40)
        if args.stream:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            sys.stdout.write(tokenizer.decode(ids))
            for token in stream(model, ids, args.max_new_tokens, seed=seed, **kw):
                sys.stdout.write(decoder.decode(tokenizer.token_to_bytes(token)))
                sys.stdout.flush()
            sys.stdout.write(decoder.decode(b"", final=True) + "\n")
        else:
            row = generate(model, ids, args.max_new_tokens, seed=seed, **kw)[0]
            print(tokenizer.decode(row))
    return 0


# ---- eval --------------------------------------------------------------------------------

def cmd_eval(args):
    model, tokenizer, state = checkpoint.load(args.ckpt)
    model = _quantized(model, args)
    # clean the text as training did; a Hugging Face folder has no training config: the defaults
    dcfg = TrainConfig.from_dict(state["config"] if state else {}).data
    dcfg.data = args.data
    dcfg.errors = args.errors or dcfg.errors
    text, report = data.load_text(dcfg)
    ids = np.asarray(data.encode(tokenizer, text, "evaluation text"), dtype=np.int64)
    T = model.config.block_size
    stride = args.stride or T
    if not 0 < stride <= T or args.batch_size < 1:
        raise ConfigError(f"--stride must be in [1, block_size={T}] and --batch-size >= 1")
    if len(ids) < 2:
        raise DataError(f"{args.data} has {len(ids)} tokens; evaluation needs at least 2")
    nats = evaluate.score_tokens(model, ids, T, stride, args.batch_size)
    n_bytes = sum(len(tokenizer.token_to_bytes(int(t))) for t in ids[1:])
    loss = nats / (len(ids) - 1)
    print(f"text: {', '.join(report['sources'][:3])} ({report['chars']:,} chars, {len(ids):,} tokens, "
          f"{n_bytes:,} scored bytes); windows of {T} tokens, stride {stride}")
    print(f"loss {loss:.4f} nats/token | perplexity {math.exp(min(loss, 700)):.3f} | "
          f"bits per byte {nats / math.log(2) / n_bytes:.4f}")
    return 0


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the subcommand's own usage, not the top-level one
        _subparser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    minigrad.runtime.tune()
    return args.func(args) or 0


def _subparser(parser, args):
    """The deepest subparser the parsed command names (e.g. `gpt tokenizer train`)."""
    for name in ("command", "tokenizer_command"):
        action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if action is None or getattr(args, name, None) not in action.choices:
            break
        parser = action.choices[getattr(args, name)]
    return parser


if __name__ == "__main__":
    sys.exit(main())
