"""What each `gpt` subcommand does with its parsed flags (the flags themselves: gpt/cli.py).

Each cmd_* takes argparse's namespace and returns the exit status; errors are raised as
gpt.errors types, which gpt/cli.py turns into one `error:` line.
"""
import codecs
import json
import math
import sys
from pathlib import Path

import numpy as np

from minigrad.nn.state import write_text

from gpt import checkpoint, data, evaluate, lora
from gpt.chat import ChatTemplate
from gpt.config import TrainConfig, build_config, explicit_flags
from gpt.data import builtin_tasks, tasks
from gpt.errors import ConfigError, DataError, MissingExtraError, TokenizerError
from gpt.quantize import quantize_int8
from gpt.sample import generate, stream
from gpt.tokenizer import load_tokenizer
from gpt.train import train
from gpt.train.progress import plot_runs, read_metrics


def _quantized(model, args):
    return quantize_int8(model) if args.quantize == "int8" else model


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


def _eval_task(args):
    """Loss on the completions, then an answer for every prompt, scored (gpt/evaluate.py)."""
    if args.max_new_tokens < 1 or (args.batch_size is not None and args.batch_size < 1) \
            or (args.limit is not None and args.limit < 1):
        raise ConfigError("--max-new-tokens, --batch-size and --limit must be >= 1")
    model, tokenizer, state = checkpoint.load(args.ckpt, args.adapter)
    model = _quantized(model, args)
    if builtin_tasks.is_builtin_task(args.data):
        digits = args.task_digits
        if digits is None:  # the training run's, else the default
            digits = TrainConfig.from_dict(state["config"] if state else {}).data.task_digits
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


# ---- serve -------------------------------------------------------------------------------

SERVE_EXTRA = ("fastapi", "uvicorn", "sse_starlette", "prometheus_client")


def cmd_serve(args):
    for module in SERVE_EXTRA:  # the serving stack is an optional extra: say how to get it
        try:
            __import__(module)
        except ImportError:
            raise MissingExtraError(f"gpt serve needs the serve extra ({module} is missing): "
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
