"""The `gpt` command: one subcommand per job of the pipeline.

    gpt train                                   # the default preset on CPython's own docs
    gpt train --preset shakespeare-char --data input.txt --out runs/shakespeare
    gpt train --resume --out runs/shakespeare --max-iters 4000
    gpt sample --ckpt runs/shakespeare --prompt "ROMEO:" --stream
    gpt eval --ckpt runs/shakespeare --data heldout.txt
    gpt serve --ckpt runs/shakespeare --port 8000
    gpt train --init-from runs/base --data train.jsonl --lora-rank 8 --out runs/qa
    gpt eval --ckpt runs/qa --data test.jsonl --out results.jsonl   # loss, exact match, F1, ROUGE-L, BLEU
    gpt merge --ckpt runs/base --adapter runs/qa --out merged
    gpt tokenizer train --data input.txt --vocab-size 4096 --out tok.txt
    gpt plot runs/a runs/b --metric val_loss --out val.png

Inputs are named the same way everywhere: --data (text, or task examples), --ckpt (a
checkpoint or run folder), --adapter (a LoRA adapter folder on --ckpt), --tokenizer (a
tokenizer file), --out (what is written). Errors in the user's input print one `error: ...`
line and exit 2; a non-finite loss or data-parallel ranks that disagree exit 1; Ctrl-C saves
and exits 130; an unknown flag is reported with its subcommand's
usage.
"""
import argparse
import sys

import minigrad
from minigrad.nn.state import StateFileError

from gpt.commands import cmd_eval, cmd_merge, cmd_plot, cmd_sample, cmd_serve, cmd_train
from gpt.config import add_flags
from gpt.errors import (CheckpointError, ConfigError, DataError, DistributedError, NonFiniteLossError,
                        TokenizerError)
from gpt.serve import flags as serve_flags
from gpt.tokenizer import cli as tokenizer_cli


def build_parser():
    parser = argparse.ArgumentParser(prog="gpt", description="Train, evaluate and sample small GPTs on minigrad.")
    sub = parser.add_subparsers(dest="command", required=True)
    tokenizer_cli.add_subcommand(sub, guarded)
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    _add_serve(sub)
    _add_plot(sub)
    _add_merge(sub)
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
    p.add_argument("--adapter", default=None, help="LoRA adapter folder (ours or PEFT's) to apply to --ckpt")
    p.add_argument("--tokenizer", default=None, help="tokenizer file or folder, for a checkpoint "
                                                     "without one (default: the checkpoint's)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user message through the "
                                                       "checkpoint's chat template; print the answer")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default=None, help="text to continue (default: a newline); special "
                                                        "tokens such as <|endoftext|> count as such")
    prompt.add_argument("--prompt-file", default=None, help="read the prompt from this UTF-8 file")
    _sampling_flags(p, max_new_tokens=300, temperature=0.8)
    p.add_argument("--num-samples", type=int, default=1, help="independent samples (default: 1)")
    p.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    _add_quantize(p)
    p.set_defaults(func=guarded(cmd_sample))


def _sampling_flags(p, max_new_tokens, temperature):
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                   help=f"most tokens to generate (default: {max_new_tokens})")
    p.add_argument("--temperature", type=float, default=temperature,
                   help=f"0 = greedy (default: {temperature:g})")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass, e.g. 0.9")
    p.add_argument("--seed", type=int, default=None, help="make sampling repeatable")


def _add_eval(sub):
    p = sub.add_parser("eval", help="score a checkpoint: loss, perplexity and bits per byte on a text; "
                                    "loss and answer metrics on task examples")
    p.add_argument("--ckpt", required=True, help="checkpoint folder or run folder")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder (ours or PEFT's) to apply to --ckpt")
    p.add_argument("--data", required=True, help="UTF-8 text file or folder of .txt files; or task "
                                                 "examples: a .jsonl file, builtin:addition or "
                                                 "builtin:reverse-words (their held-out split)")
    p.add_argument("--stride", type=int, default=None,
                   help="text: window step in tokens (default: block_size, non-overlapping windows); "
                        "smaller scores each token with more context, and costs more")
    p.add_argument("--batch-size", type=int, default=None, help="windows (text, default 8) or examples "
                                                                "(tasks, default 32) per forward")
    p.add_argument("--errors", choices=("strict", "replace"), default=None,
                   help="text: invalid UTF-8 handling (default: the training run's)")
    task = p.add_argument_group("task examples: answers")
    _sampling_flags(task, max_new_tokens=64, temperature=0.0)
    task.add_argument("--limit", type=int, default=None, help="score only the first N examples")
    task.add_argument("--task-digits", type=int, default=None, help="digits of builtin:addition "
                                                                    "(default: the training run's, else 2)")
    task.add_argument("--out", default=None, help="write one JSON object per example here: prompt, "
                                                  "reference, answer, exact_match, f1, rouge_l, bleu")
    _add_quantize(p)
    p.set_defaults(func=guarded(cmd_eval))


def _add_serve(sub):
    p = sub.add_parser("serve", help="serve a checkpoint over an OpenAI-compatible HTTP API, with a web page",
                       description="Serve a checkpoint: /v1/completions and /v1/chat/completions (OpenAI's "
                                   "API, streaming too), /tokenize, /detokenize, /health, /metrics, and a "
                                   "page at /. Concurrent requests are decoded together (continuous batching).")
    p.add_argument("--ckpt", required=True, help="checkpoint folder, run folder or Hugging Face GPT-2 folder")
    p.add_argument("--adapter", default=None, help="a LoRA adapter folder (PEFT's layout) to apply")
    _add_quantize(p)
    serve_flags.add_server_flags(p)
    p.set_defaults(func=guarded(cmd_serve))


def _add_plot(sub):
    p = sub.add_parser("plot", help="curves of one or more runs on one figure, from their metrics.jsonl",
                       description="Plot runs' metrics.jsonl with matplotlib (pip install "
                                   "'minigrad-gpt[plot]'): each run's step loss and val loss, or one field.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run folder (its ckpt/ or metrics.jsonl too)")
    p.add_argument("--metric", default=None, help="one metrics.jsonl field instead, e.g. val_loss, lr, "
                                                  "grad_norm, tokens_per_s")
    p.add_argument("--out", default="plot.png", help="the PNG to write (default: plot.png)")
    p.set_defaults(func=guarded(cmd_plot))


def _add_merge(sub):
    p = sub.add_parser("merge", help="fold a LoRA adapter into its base: a plain checkpoint")
    p.add_argument("--ckpt", required=True, help="the base model folder")
    p.add_argument("--adapter", required=True, help="LoRA adapter folder (ours or PEFT's)")
    p.add_argument("--out", required=True, help="new folder: config.json + model.safetensors, tokenizer, "
                                                "chat template (transformers opens it)")
    p.set_defaults(func=guarded(cmd_merge))


def _add_quantize(p):
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="int8: weight-only int8 matmuls (per-output-channel scales; gpt/quantize.py), "
                        "about 4x less memory to read per token")


def guarded(command):
    """Our clear errors become one line on stderr and a non-zero status, never a traceback."""
    def run(args):
        try:
            return command(args)
        except (NonFiniteLossError, DistributedError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except (DataError, ConfigError, CheckpointError, TokenizerError, StateFileError,
                FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
    return run


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
