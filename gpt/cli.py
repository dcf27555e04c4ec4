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
import codecs
import json
import math
import sys
from pathlib import Path

import numpy as np

import minigrad
from minigrad.nn.state import StateFileError, write_text

from gpt import checkpoint, data, evaluate, lora
from gpt.chat import ChatTemplate
from gpt.config import TrainConfig, add_flags, build_config, explicit_flags
from gpt.data import builtin_tasks, tasks
from gpt.errors import (CheckpointError, ConfigError, DataError, DistributedError, NonFiniteLossError,
                        TokenizerError)
from gpt.quantize import quantize_int8
from gpt.sample import generate, stream
from gpt.serve import flags as serve_flags
from gpt.tokenizer import cli as tokenizer_cli, load_tokenizer
from gpt.train import train
from gpt.train.progress import plot_runs, read_metrics


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


def _quantized(model, args):
    return quantize_int8(model) if args.quantize == "int8" else model


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


def _chat_prompt_ids(args, tokenizer, template):
    """The prompt as one user turn, then the assistant's generation prompt."""
    if template is None:
        raise ConfigError(f"--chat: {args.adapter or args.ckpt} has no chat template (it was not "
                          f"fine-tuned on chat data)")
    text = data.read_text_file(args.prompt_file) if args.prompt_file else (args.prompt or "")
    return tasks.chat_prompt_ids([{"role": "user", "content": text}], tokenizer, template)


def _model_and_tokenizer(args):
    """The checkpoint's model (with --adapter on it) with its own tokenizer, or --tokenizer."""
    if args.tokenizer is None:
        return checkpoint.load(args.ckpt, args.adapter)[:2]
    model, tokenizer = checkpoint.load_model(args.ckpt, args.adapter), load_tokenizer(args.tokenizer)
    checkpoint.check_vocab(model, tokenizer, args.tokenizer)
    return model, tokenizer


def cmd_sample(args):
    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise ConfigError("--max-new-tokens must be >= 0 and --num-samples >= 1")
    model, tokenizer = _model_and_tokenizer(args)
    model = _quantized(model, args)
    template = checkpoint.load_template(args.ckpt, args.adapter)
    ids = _chat_prompt_ids(args, tokenizer, template) if args.chat else _prompt_ids(args, tokenizer)
    stop = evaluate.stop_ids(tokenizer, template if args.chat else None)  # as transformers: end-of-text ends it
    kw = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, eos_token_id=stop or None)
    for n in range(args.num_samples):
        seed = None if args.seed is None else args.seed + n
        if n:
            print("\n" + "-" * 40)
        if args.stream:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            sys.stdout.write("" if args.chat else tokenizer.decode(ids))
            for token in stream(model, ids, args.max_new_tokens, seed=seed, **kw):
                sys.stdout.write(decoder.decode(tokenizer.token_to_bytes(token)))
                sys.stdout.flush()
            sys.stdout.write(decoder.decode(b"", final=True) + "\n")
        else:
            row = generate(model, ids, args.max_new_tokens, seed=seed, **kw)[0]
            print(tokenizer.decode(row[len(ids):] if args.chat else row))
    return 0


# ---- eval --------------------------------------------------------------------------------

def cmd_eval(args):
    if data.is_task(args.data):
        return _eval_task(args)
    model, tokenizer, state = checkpoint.load(args.ckpt, args.adapter)
    model = _quantized(model, args)
    args.batch_size = 8 if args.batch_size is None else args.batch_size
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


# ---- serve -------------------------------------------------------------------------------

SERVE_EXTRA = ("fastapi", "uvicorn", "sse_starlette", "prometheus_client")


def cmd_serve(args):
    for module in SERVE_EXTRA:  # the serving stack is an optional extra: say how to get it
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"gpt serve needs the serve extra ({module} is missing): "
                              "pip install 'minigrad-gpt[serve]'") from None
    from gpt.serve.server import serve
    return serve(args)


# ---- plot --------------------------------------------------------------------------------

def cmd_plot(args):
    runs = {run: read_metrics(_metrics_file(run)) for run in args.runs}
    curves = plot_runs(runs, args.out, args.metric)
    for run in [r for r in runs if args.metric and r not in curves]:
        print(f"note: {run} has no {args.metric}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


def _metrics_file(run):
    """RUN's metrics.jsonl: RUN itself if a file, else the one in RUN, or in its parent when
    RUN is a run's ckpt/ (what --ckpt names elsewhere)."""
    path = Path(run)
    if path.is_file():
        return path
    for folder in (path, path.parent) if path.name == "ckpt" else (path,):
        if (folder / "metrics.jsonl").is_file():
            return folder / "metrics.jsonl"
    raise DataError(f"{run}: no metrics.jsonl there (gpt plot takes the run folders gpt train writes)")
def _eval_task(args):
    """Loss on the completions, then an answer for every prompt, scored (gpt/evaluate.py)."""
    if args.max_new_tokens < 1 or (args.batch_size is not None and args.batch_size < 1) \
            or (args.limit is not None and args.limit < 1):
        raise ConfigError("--max-new-tokens, --batch-size and --limit must be >= 1")
    model, tokenizer, state = checkpoint.load(args.ckpt, args.adapter)
    model = _quantized(model, args)
    if builtin_tasks.is_builtin_task(args.data):
        digits = args.task_digits if args.task_digits is not None else TrainConfig.from_dict(state["config"] if state else {}).data.task_digits
        examples, what = builtin_tasks.builtin_task(args.data, digits)["val"], "held-out"
    else:
        examples, what = tasks.read_jsonl(args.data), "test"
    examples = examples[:args.limit]
    template = checkpoint.load_template(args.ckpt, args.adapter)
    if template is None and any(ex.is_chat for ex in examples):
        template = ChatTemplate()  # the model never saw one: its markers are plain text to it
    result = evaluate.score_task(model, tokenizer, template, examples, args.max_new_tokens,
                                 args.batch_size or 32, _progress_line(), temperature=args.temperature,
                                 top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    print(f"{args.data}: {len(examples):,} {what} examples; loss {result['loss']:.4f} nats/token on "
          f"{result['tokens']:,} completion tokens (perplexity {math.exp(min(result['loss'], 700)):.3f})")
    scores = [f"exact match {result['exact_match']:.2f}", f"F1 {result['f1']:.2f}"]
    scores += [f"{name} {result[key]:.2f}" for name, key in (("ROUGE-L", "rouge_l"), ("BLEU", "bleu"))
               if result[key] is not None]
    print(" | ".join(scores) + f"   (0-100; answers of up to {args.max_new_tokens} tokens)")
    for note in result["notes"]:
        print(f"note: {note}")
    if args.out:
        write_text(args.out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in result["rows"]))
        print(f"wrote {args.out}")
    return 0


def _progress_line(stream=None):
    """progress(done, total) for answer generation, on stderr: one rewritten line on a
    terminal, a few plain lines otherwise."""
    stream, marks = stream or sys.stderr, set()

    def progress(done, total):
        if stream.isatty():
            stream.write(f"\ranswers {done:,}/{total:,}" + ("\n" if done == total else ""))
        elif done == total or done * 4 // total not in marks:
            marks.add(done * 4 // total)
            stream.write(f"answers {done:,}/{total:,}\n")
        stream.flush()
    return progress


# ---- merge -------------------------------------------------------------------------------

def cmd_merge(args):
    model, tokenizer, _ = checkpoint.load(args.ckpt, args.adapter)
    n = lora.trainable_count(model)
    lora.merge(model)
    template = checkpoint.load_template(args.ckpt, args.adapter)
    checkpoint.save_plain(args.out, model, tokenizer, template)
    print(f"merged {args.adapter} ({n:,} adapter parameters) into {args.ckpt}: wrote {args.out} "
          f"(config.json + model.safetensors, {checkpoint.TOKENIZER}"
          f"{', ' + 'chat_template.json' if template else ''})")
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
