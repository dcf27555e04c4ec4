"""Weight-only int8 (gpt/quantize.py) against float32 on trained models: perplexity on each
run's own held-out text (the validation tail of its training corpus, never trained on).

    gpt train --out /tmp/runs/default
    gpt train --preset shakespeare-char --data ../shared/data/tinyshakespeare.txt --out /tmp/runs/shk
    python bench/int8_quality.py /tmp/runs/default /tmp/runs/shk

Each run folder's trainer state says which corpus, cleaning and validation fraction it was
trained with; the validation text is rebuilt from them and scored in windows of block_size
tokens (gpt eval's scoring, every token once), with the float32 weights and then with the
same model quantised. Random weights say nothing about quality: give trained runs.
"""
import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def held_out_ids(path, tokenizer, state):
    from gpt import data
    from gpt.config import TrainConfig
    if state is None:
        sys.exit(f"{path}: no trainer state (a Hugging Face folder?): this bench needs a run of `gpt train`")
    cfg = TrainConfig.from_dict(state["config"])
    text, _ = data.load_text(cfg.data)
    _, val_text = data.split_text(text, cfg.data.val_fraction)
    return np.asarray(data.encode(tokenizer, val_text, "validation text"), dtype=np.int64)


def perplexity(model, ids, max_tokens):
    from gpt.evaluate import score_tokens
    ids = ids[:max_tokens + 1]
    T = model.config.block_size
    return math.exp(score_tokens(model, ids, T, T, 8) / (len(ids) - 1)), len(ids) - 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run or checkpoint folders written by gpt train")
    parser.add_argument("--max-tokens", type=int, default=200_000, help="score at most this many held-out tokens")
    args = parser.parse_args(argv)
    import minigrad
    from gpt import checkpoint
    from gpt.quantize import quantize_int8
    minigrad.runtime.tune()
    print(f"{'run':<34} {'params':>9} {'tokens':>8} {'fp32 ppl':>9} {'int8 ppl':>9} {'int8/fp32':>9}")
    for path in args.runs:
        model, tokenizer, state = checkpoint.load(path)
        ids = held_out_ids(path, tokenizer, state)
        params = model.num_params()
        fp32, n = perplexity(model, ids, args.max_tokens)
        int8, _ = perplexity(quantize_int8(model), ids, args.max_tokens)
        print(f"{str(path)[-34:]:<34} {params:>9,} {n:>8,} {fp32:>9.4f} {int8:>9.4f} "
              f"{int8 / fp32 - 1:>+8.3%}", flush=True)


if __name__ == "__main__":
    main()
