"""Training configuration: dataclasses, presets, and the argparse flags generated from them.

Every field of the five dataclasses below is one `gpt train` flag (`n_layer` ->
`--n-layer`; a bool `x` -> `--x/--no-x`), with its type, default and help text
taken from the field itself, so the flags cannot drift from the config. The
model's fields are GPTConfig's own (gpt/model.py), all but vocab_size, which the
tokenizer decides (`--vocab-size` is the BPE size). A run builds its config in
three layers: dataclass defaults, then the preset ("default" unless named), then
the flags the user actually typed (argparse defaults are SUPPRESSed so an
untyped flag never overrides a preset).
"""
import argparse
import dataclasses
import typing
from dataclasses import dataclass, field

from gpt.errors import ConfigError
from gpt.model import GPTConfig

MODEL_FLAGS_SKIP = ("vocab_size",)  # GPTConfig fields that are not flags: the tokenizer sets it


def opt(default, help, choices=None):
    """A dataclass field whose help text (the comment) and choices feed the CLI."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class DataConfig:
    data: typing.Optional[str] = opt(None, "UTF-8 text file or folder of .txt files; or task data: a "
                                           ".jsonl file of {prompt, completion} or {messages} "
                                           "examples, builtin:addition or builtin:reverse-words "
                                           "(default: CPython's bundled pydoc topics, no download)")
    tokenizer: str = opt("bpe", "'char', 'bpe' (trained on the train split) or a saved tokenizer file")
    vocab_size: int = opt(512, "BPE vocabulary size, used with --tokenizer bpe")
    val_fraction: float = opt(0.1, "fraction of the text (its tail) held out for validation")
    normalize_newlines: bool = opt(True, "turn \\r\\n and \\r into \\n")
    nfc: bool = opt(True, "Unicode NFC normalisation (composed accents, one code point each)")
    keep_control: bool = opt(False, "keep control characters other than \\n and \\t")
    dedup_lines: bool = opt(False, "drop exact repeats of non-blank lines (first copy kept)")
    errors: str = opt("strict", "invalid UTF-8: 'strict' stops with the byte offset, "
                                "'replace' substitutes U+FFFD", choices=("strict", "replace"))
    task_digits: int = opt(2, "digits of each number in builtin:addition")


@dataclass
class OptimConfig:
    batch_size: int = opt(12, "sequences per micro-batch on each process (under mpiexec -n N the "
                              "global batch is N x batch_size x grad_accum_steps)")
    grad_accum_steps: int = opt(1, "micro-batches per optimizer step, their gradients added up: "
                                   "K of them train as one batch K times larger, in the memory of one")
    max_iters: int = opt(1000, "optimizer steps in the whole run")
    lr: float = opt(2e-3, "peak learning rate (after warm-up)")
    min_lr: float = opt(2e-4, "learning rate at the end of the cosine decay")
    warmup_iters: int = opt(50, "linear warm-up steps")
    lr_decay_iters: typing.Optional[int] = opt(None, "steps of cosine decay (default: max_iters)")
    weight_decay: float = opt(0.1, "AdamW weight decay, on 2-D tensors only")
    beta1: float = opt(0.9, "AdamW beta1")
    beta2: float = opt(0.99, "AdamW beta2 (0.99: small batches are noisy)")
    grad_clip: float = opt(1.0, "clip the global gradient norm to this (0 = off)")


@dataclass
class RunConfig:
    preset: str = opt("default", "starting values for every other flag; typed flags override",
                      choices=("default", "shakespeare-char", "tiny"))
    eval_interval: int = opt(250, "evaluate train/val loss every this many steps (and at the end)")
    eval_iters: int = opt(20, "batches per split in each evaluation")
    log_interval: int = opt(25, "steps between progress lines when stdout is not a terminal")
    seed: int = opt(1337, "seeds weight init, dropout and batch sampling")
    threads: typing.Optional[int] = opt(None, "compute threads (default: all cores)")
    out: typing.Optional[str] = opt(None, "run folder (default: runs/<preset>-<time>)")
    resume: bool = opt(False, "continue the run in --out from its checkpoint")
    init_from: typing.Optional[str] = opt(None, "fine-tune from a checkpoint folder (ours or a "
                                                "Hugging Face GPT-2 one): its model and tokenizer, "
                                                "a fresh optimizer; --block-size may be lowered")
    sample_tokens: int = opt(300, "tokens to sample and print when training ends (0 = none)")
    ddp_timeout: float = opt(300.0, "under mpiexec: seconds a process waits for the others (rank 0 "
                                    "preparing data or saving included) before it stops the whole "
                                    "run as one that died or hangs")
    tensorboard: bool = opt(False, "write TensorBoard event files to <out>/tb: scalars every step; a "
                                   "sample and histograms at each evaluation (pip install "
                                   "'minigrad-gpt[tensorboard]')")
    tb_histograms: bool = opt(True, "with --tensorboard: histograms of every parameter's weights and "
                                    "gradients at each evaluation")


@dataclass
class LoRAConfig:
    lora_rank: int = opt(0, "LoRA rank: train low-rank adapters on the frozen --init-from model "
                            "(0 = train every weight)")
    lora_alpha: float = opt(8.0, "LoRA scaling numerator: updates are scaled by alpha / rank (PEFT's default 8)")
    lora_dropout: float = opt(0.0, "dropout on the LoRA adapters' input")
    lora_targets: str = opt("c_attn", "comma-separated module-path suffixes to adapt, as PEFT's "
                                      "target_modules (c_attn, c_proj, c_fc, attn.c_proj, ...)")


GROUPS = {"data": DataConfig, "model": GPTConfig, "optim": OptimConfig, "run": RunConfig, "lora": LoRAConfig}


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: GPTConfig = field(default_factory=GPTConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of to_dict (a saved run's config); unknown keys are an error, missing ones
        default (the model's defaults are the default preset's, as for a fresh run)."""
        cfg = apply_overrides(cls(), {k: v for k, v in PRESETS["default"].items() if k in _model_fields()})
        for group, values in d.items():
            if group not in GROUPS:
                raise ConfigError(f"unknown config section {group!r}")
            for name, value in values.items():
                apply_overrides(cfg, {name: value}, group)
        return cfg


# Presets: flat field -> value. "default" is what a bare `gpt train` runs: BPE 512 trained on
# the corpus, 4 layers x 128, block 128, batch 12, 1000 steps at lr 2e-3, ~1.5 minutes of
# training on 2 cores. BPE 512 because on the pydoc corpus it reaches ~1.6 nats/char where
# char-level is at ~2.0 for the same time, and its samples already spell Python identifiers;
# lr 2e-3 is safe at this size with warm-up and clipping. "shakespeare-char" is nanoGPT's CPU
# recipe, with lighter evaluation than nanoGPT's 200 batches every 250 steps so that it stays
# under ~10% of the run (bench/train_shakespeare.py measures the final val loss on 200).
PRESETS = {
    "default": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, dropout=0.0, bias=False),
    "shakespeare-char": dict(tokenizer="char", n_layer=4, n_head=4, n_embd=128, block_size=64,
                             dropout=0.0, bias=False, batch_size=12, max_iters=2000, lr=1e-3,
                             min_lr=1e-4, warmup_iters=100, weight_decay=0.1, beta1=0.9,
                             beta2=0.99, grad_clip=1.0, eval_interval=500, eval_iters=50),
    # A seconds-long smoke run (tests, CI).
    "tiny": dict(tokenizer="char", n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=4, max_iters=20,
                 warmup_iters=2, eval_interval=10, eval_iters=2, sample_tokens=20),
}


def _fields(group):
    """(dataclasses.Field, resolved type) of a group's flag fields."""
    cls = GROUPS[group]
    hints = typing.get_type_hints(cls)
    skip = MODEL_FLAGS_SKIP if group == "model" else ()
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name not in skip]


def _model_fields():
    return [f.name for f, _ in _fields("model")]


def field_index():
    """Flat field name -> (group name, dataclasses.Field, resolved type), one per flag."""
    index = {}
    for group in GROUPS:
        for f, tp in _fields(group):
            assert f.name not in index, f"duplicate config field {f.name}"
            index[f.name] = (group, f, tp)
    return index


def _base_type(tp):
    """int for Optional[int], etc."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) is typing.Union else tp


def apply_overrides(cfg, values, group=None):
    """Set flat field -> value on cfg (within one group if given), checking names and types."""
    index = field_index()
    if group == "model":  # a saved model section also holds vocab_size
        hints = typing.get_type_hints(GPTConfig)
        index.update({f.name: ("model", f, hints[f.name]) for f in dataclasses.fields(GPTConfig)})
    for name, value in values.items():
        if name not in index or (group is not None and index[name][0] != group):
            raise ConfigError(f"unknown config field {name!r}" + (f" in section {group!r}" if group else ""))
        group_of, f, tp = index[name]
        base = _base_type(tp)
        if value is not None or base is tp:
            ok = isinstance(value, base) and not (base is int and isinstance(value, bool))
            if base is float and isinstance(value, int) and not isinstance(value, bool):
                value, ok = float(value), True
            if not ok:
                raise ConfigError(f"{name} must be {base.__name__}, got {value!r}")
        setattr(getattr(cfg, group_of), name, value)
    return cfg


def add_flags(parser):
    """One flag per field, in an argument group per dataclass; defaults SUPPRESSed."""
    for group in GROUPS:
        arg_group = parser.add_argument_group(f"{group} options")
        for f, tp in _fields(group):
            _add_flag(arg_group, f, _base_type(tp))


def _add_flag(arg_group, f, base):
    flag = "--" + f.name.replace("_", "-")
    help_text = f.metadata["help"]
    default = PRESETS["default"].get(f.name, f.default)  # what a bare `gpt train` uses
    if "default:" not in help_text:
        help_text += f" (default: {default})"
    kwargs = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text)
    if base is bool:
        arg_group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
    else:
        arg_group.add_argument(flag, type=base, choices=f.metadata.get("choices"), **kwargs)


def explicit_flags(args):
    """The flat field -> value pairs the user typed (argparse SUPPRESSes the rest)."""
    names = field_index()
    return {k: v for k, v in vars(args).items() if k in names}


def build_config(explicit, base=None):
    """Defaults (or a saved run's config), then the preset (fresh runs only; every preset starts
    from "default"), then typed flags."""
    if explicit.get("resume") and explicit.get("init_from"):
        raise ConfigError("--resume and --init-from exclude each other")
    cfg = base if base is not None else TrainConfig()
    if base is None:
        preset = explicit.get("preset", cfg.run.preset)
        apply_overrides(cfg, dict(PRESETS["default"], **PRESETS[preset], preset=preset))
    apply_overrides(cfg, explicit)
    validate(cfg)
    return cfg


def validate(cfg):
    m, o, d, r, lo = cfg.model, cfg.optim, cfg.data, cfg.run, cfg.lora
    checks = [
        (m.n_embd % m.n_head == 0, f"n_embd ({m.n_embd}) must be divisible by n_head ({m.n_head})"),
        (min(m.n_layer, m.n_head, m.n_embd, m.block_size) > 0, "model sizes must be positive"),
        (0 <= m.dropout < 1, f"dropout must be in [0, 1), got {m.dropout}"),
        (0 < d.val_fraction < 1, f"val_fraction must be in (0, 1), got {d.val_fraction}"),
        (d.vocab_size >= 257, f"vocab_size must be at least 257 (256 bytes + 1), got {d.vocab_size}"),
        (o.batch_size > 0 and o.max_iters >= 0, "batch_size must be > 0 and max_iters >= 0"),
        (o.grad_accum_steps > 0, f"grad_accum_steps must be >= 1, got {o.grad_accum_steps}"),
        (r.ddp_timeout > 0, f"ddp_timeout must be > 0 seconds, got {r.ddp_timeout}"),
        (o.lr > 0 and o.min_lr >= 0, "lr must be > 0 and min_lr >= 0"),
        (o.warmup_iters >= 0 and o.grad_clip >= 0, "warmup_iters and grad_clip must be >= 0"),
        (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1, "betas must be in [0, 1)"),
        (r.eval_interval > 0 and r.eval_iters > 0, "eval_interval and eval_iters must be > 0"),
        (r.log_interval > 0 and r.sample_tokens >= 0, "log_interval must be > 0, sample_tokens >= 0"),
        (r.threads is None or r.threads > 0, "threads must be > 0"),
        (lo.lora_rank >= 0 and lo.lora_alpha > 0, "lora_rank must be >= 0 and lora_alpha > 0"),
        (0 <= lo.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {lo.lora_dropout}"),
        (not lo.lora_rank or r.init_from or r.resume,
         "--lora-rank adapts a trained model: give it --init-from BASE"),
        (not lo.lora_rank or lora_targets(lo), "--lora-targets names no module"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return cfg


def lora_targets(lora):
    """--lora-targets as PEFT's target_modules list."""
    return [t.strip() for t in lora.lora_targets.split(",") if t.strip()]
