"""Fine-tuning end to end on tiny models: task data through `gpt train`, new special tokens and
the embedding rows they get, LoRA runs (layout, exact resume, merge), `gpt eval` on task data
with results.jsonl, `gpt sample --adapter/--chat`, and each bad input as a one-line error."""
import io
import json

import numpy as np
import pytest

from conftest import require
from gpt import checkpoint, cli, lora
from gpt.config import build_config
from gpt.errors import CheckpointError, ConfigError
from gpt.train import build_run, train_loop
from gpt.train.progress import read_metrics

TEXT = "".join(f"line {i}: Add. the system and user ask {i}+{i % 7}=? and the assistant says {i + i % 7}.\n"
               for i in range(80))
CHATS = [{"messages": [{"role": "system", "content": "Add."}, {"role": "user", "content": f"{a}+{b}?"},
                       {"role": "assistant", "content": str(a + b)}]} for a in range(6) for b in range(5)]
PAIRS = [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a in range(6) for b in range(5)]
SMALL = dict(n_embd=16, block_size=48, batch_size=4, max_iters=6, eval_interval=3, eval_iters=2,
             sample_tokens=0, warmup_iters=1)


def jsonl(tmp_path, rows, name):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def train(**flags):
    out = io.StringIO()
    run = build_run(build_config(dict(flags)), dict(flags), log=lambda m: print(m, file=out))
    train_loop(run, (), out)
    return run, out.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny char-level model pretrained on text (no special tokens), saved as a run."""
    folder = tmp_path_factory.mktemp("base")
    (folder / "corpus.txt").write_text(TEXT)
    run, _ = train(preset="tiny", data=str(folder / "corpus.txt"), out=str(folder / "run"),
                   **dict(SMALL, max_iters=4))
    return str(folder / "run")


def test_chat_data_from_scratch_adds_markers_and_saves_the_template(tmp_path):
    run, printed = train(preset="tiny", data=jsonl(tmp_path, CHATS, "chat.jsonl"), out=str(tmp_path / "r"),
                         **SMALL)
    specials = run.tokenizer.special_tokens
    assert set(specials) == {"<|im_start|>", "<|im_end|>"}  # chats only: no end-of-text needed
    assert run.model.config.vocab_size == run.tokenizer.vocab_size
    assert (run.ckpt / "chat_template.json").exists() and "27 train and 3 val" in printed
    rows = read_metrics(tmp_path / "r" / "metrics.jsonl")
    assert all(0 < r["counted_tokens"] < 4 * 47 for r in rows if "loss" in r)  # answers only


def test_init_from_grows_the_embedding_with_mean_rows(tmp_path, base):
    before = checkpoint.load_model(base)
    run, printed = train(preset="tiny", init_from=base, data=jsonl(tmp_path, PAIRS, "p.jsonl"),
                         out=str(tmp_path / "ft"), **dict(SMALL, max_iters=0))
    V = before.config.vocab_size
    wte = run.model.transformer.wte.weight.data
    assert run.model.config.vocab_size == V + 1 and run.tokenizer.special_tokens == {"<|endoftext|>": V}
    assert np.allclose(wte[V], before.transformer.wte.weight.data.mean(0), atol=1e-6)
    assert np.array_equal(wte[:V], before.transformer.wte.weight.data)
    assert run.model.lm_head.weight is run.model.transformer.wte.weight
    assert "grown from" in printed


def test_lora_run_layout_and_exact_resume(tmp_path, base):
    data = jsonl(tmp_path, CHATS, "chat.jsonl")
    flags = dict(preset="tiny", init_from=base, data=data, lora_rank=2, lora_targets="c_attn,c_fc",
                 lora_dropout=0.1, **dict(SMALL, max_iters=8, eval_interval=4))
    straight, printed = train(out=str(tmp_path / "a"), **flags)
    assert "trainable parameters of" in printed
    files = {p.name for p in straight.ckpt.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.txt", "chat_template.json",
            "optimizer.safetensors", "trainer_state.json"} <= files and "model.safetensors" not in files
    config = json.loads((straight.ckpt / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(checkpoint.recover(base).resolve())
    assert config["target_modules"] == ["c_attn", "c_fc"] and config["trainable_token_indices"]

    def stop_at_4(run, it, loss):
        if it == 4:
            raise KeyboardInterrupt
    out = io.StringIO()
    run = build_run(build_config(dict(flags, out=str(tmp_path / "b"))), dict(flags), log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        train_loop(run, [stop_at_4], out)
    resumed, _ = train(resume=True, out=str(tmp_path / "b"))
    losses = [[r["loss"] for r in read_metrics(tmp_path / x / "metrics.jsonl") if "loss" in r] for x in "ab"]
    assert losses[0] == losses[1]
    a = lora.adapter_tensors(straight.model)
    b = lora.adapter_tensors(resumed.model)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="cannot change lora_rank"):
        train(resume=True, out=str(tmp_path / "b"), lora_rank=4)


def test_lora_bad_setups(tmp_path, base):
    data = jsonl(tmp_path, PAIRS, "p.jsonl")
    with pytest.raises(ConfigError, match="--init-from"):
        build_config({"data": data, "lora_rank": 2})
    with pytest.raises(ConfigError, match="match no module"):
        train(preset="tiny", init_from=base, data=data, lora_rank=2, lora_targets="q_proj",
              out=str(tmp_path / "x"), **SMALL)
    run, _ = train(preset="tiny", init_from=base, data=data, lora_rank=2, out=str(tmp_path / "l"), **SMALL)
    with pytest.raises(ConfigError, match="merge it first"):
        train(preset="tiny", init_from=str(run.ckpt), data=data, lora_rank=2, out=str(tmp_path / "y"), **SMALL)
    assert cli.main(["train", "--data", data, "--lora-rank", "2"]) == 2


def test_eval_sample_and_merge_commands(tmp_path, base, capsys, monkeypatch):
    data = jsonl(tmp_path, CHATS, "chat.jsonl")
    run, _ = train(preset="tiny", init_from=base, data=data, lora_rank=2, out=str(tmp_path / "l"),
                   **dict(SMALL, max_iters=3))
    results = tmp_path / "results.jsonl"
    capsys.readouterr()
    assert cli.main(["eval", "--ckpt", str(tmp_path / "l"), "--data", data, "--max-new-tokens", "4",
                     "--out", str(results), "--limit", "5"]) == 0
    printed = capsys.readouterr()
    assert "5 test examples; loss" in printed.out and "exact match" in printed.out
    assert "answers 5/5" in printed.err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 5 and set(rows[0]) == {"prompt", "reference", "answer", "exact_match", "f1",
                                               "rouge_l", "bleu"}
    assert rows[0]["reference"] == "0" and rows[0]["prompt"][-1] == {"role": "user", "content": "0+0?"}
    # the same numbers from the base plus the adapter, and from the merged model
    assert cli.main(["eval", "--ckpt", base, "--adapter", str(tmp_path / "l"), "--data", data,
                     "--max-new-tokens", "4", "--limit", "5"]) == 0
    via_adapter = capsys.readouterr().out
    assert cli.main(["merge", "--ckpt", base, "--adapter", str(tmp_path / "l"), "--out", str(tmp_path / "m")]) == 0
    assert "merged" in capsys.readouterr().out
    assert cli.main(["eval", "--ckpt", str(tmp_path / "m"), "--data", data, "--max-new-tokens", "4",
                     "--limit", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == via_adapter.splitlines()[:2] == printed.out.splitlines()[:2]
    assert cli.main(["merge", "--ckpt", base, "--adapter", str(tmp_path / "l"), "--out", str(tmp_path / "m")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert cli.main(["sample", "--ckpt", str(tmp_path / "l"), "--chat", "--prompt", "1+1?",
                     "--max-new-tokens", "3", "--seed", "0"]) == 0
    assert cli.main(["sample", "--ckpt", base, "--chat", "--prompt", "x"]) == 2  # no template there
    monkeypatch.setitem(__import__("sys").modules, "sacrebleu", None)  # the eval extra missing
    assert cli.main(["eval", "--ckpt", str(tmp_path / "m"), "--data", data, "--limit", "2",
                     "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert "ROUGE-L and BLEU skipped (" in out and "sacrebleu" in out.split("skipped (")[1]
    assert "not installed): pip install 'minigrad-gpt[eval]'" in out
    assert "BLEU " not in out.split("note:")[0] and "exact match" in out


def test_merged_model_opens_in_transformers_with_our_logits(tmp_path, base):
    torch, transformers = require("torch"), require("transformers")
    run, _ = train(preset="tiny", init_from=base, data=jsonl(tmp_path, CHATS, "c.jsonl"), lora_rank=2,
                   lora_targets="c_attn,c_proj,c_fc", out=str(tmp_path / "l"), **dict(SMALL, lr=0.05))
    assert cli.main(["merge", "--ckpt", base, "--adapter", str(tmp_path / "l"), "--out", str(tmp_path / "m")]) == 0
    ours, tokenizer, _ = checkpoint.load(base, adapter=str(tmp_path / "l"))
    ids = np.array([tokenizer.encode("<|im_start|>user\n2+3?<|im_end|>\n", allowed_special="all")])
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path / "m")).eval()
    with torch.no_grad():
        theirs = hf(torch.tensor(ids)).logits.numpy()
    assert np.abs(theirs - ours(ids)[0].data).max() < 1e-4
    assert np.abs(theirs - checkpoint.load_model(tmp_path / "m")(ids)[0].data).max() < 1e-4


@pytest.mark.parametrize("argv, message", [
    (["eval", "--data", "{data}", "--limit", "0"], "must be >= 1"),
    (["eval", "--data", "builtin:nope"], "unknown built-in"),
    (["eval", "--data", "{bad}"], "bad.jsonl:2: missing field 'completion'"),
    (["eval", "--data", "builtin:addition", "--task-digits", "12"], "task-digits"),
    (["eval", "--data", "{data}", "--adapter", "{tmp}"], "no adapter_config.json"),
    (["train", "--data", "{bad}", "--preset", "tiny", "--out", "{tmp}/x"], "bad.jsonl:2"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, base, capsys, argv, message):
    fill = dict(data=jsonl(tmp_path, PAIRS, "p.jsonl"), tmp=str(tmp_path),
                bad=jsonl(tmp_path, [PAIRS[0], {"prompt": "1+1="}], "bad.jsonl"))
    argv = [a.format(**fill) for a in argv]
    if argv[0] == "eval":
        argv += ["--ckpt", base]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_peft_folder_without_our_files_loads_with_its_base(tmp_path, base):
    """An adapter folder PEFT wrote has no tokenizer or trainer state: ours come from the base."""
    peft, torch = require("peft"), require("torch")
    transformers = require("transformers")
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(checkpoint.recover(base)))
    pm = peft.get_peft_model(hf, peft.LoraConfig(r=2, target_modules=["c_attn"], init_lora_weights=False,
                                                 fan_in_fan_out=True, task_type="CAUSAL_LM"))
    pm.save_pretrained(str(tmp_path / "peft"))
    model, tokenizer, state = checkpoint.load(base, adapter=str(tmp_path / "peft"))
    assert state["iter"] == 4 and tokenizer.vocab_size == model.config.vocab_size  # the base's
    ids = np.array([tokenizer.encode("the user")])
    with torch.no_grad():
        theirs = pm.eval()(torch.tensor(ids)).logits.numpy()
    assert np.abs(theirs - model(ids)[0].data).max() < 1e-4
    alone = checkpoint.load(tmp_path / "peft")[0]  # the base is the folder PEFT loaded it from
    assert np.array_equal(alone(ids)[0].data, model(ids)[0].data)
    config = tmp_path / "peft" / "adapter_config.json"
    config.write_text(json.dumps(dict(json.loads(config.read_text()), base_model_name_or_path="gpt2")))
    with pytest.raises(CheckpointError, match="not a folder here"):
        checkpoint.load(tmp_path / "peft")  # a hub name: no download here, the user names the base


@pytest.mark.slow
def test_addition_from_scratch_is_learned(tmp_path, capsys):
    """The demo's from-scratch arm, shortened: a 2-layer char model learns 2-digit addition to
    >= 90% exact match on held-out pairs it never saw in either order (bench/finetune_tasks.py
    runs the full recipe: 2000 steps, >= 95%)."""
    flags = ["--data", "builtin:addition", "--tokenizer", "char", "--n-layer", "2", "--n-head", "4",
             "--n-embd", "128", "--block-size", "64", "--batch-size", "64", "--lr", "3e-3", "--min-lr", "3e-4",
             "--warmup-iters", "50", "--max-iters", "1500", "--eval-interval", "1500", "--eval-iters", "4",
             "--sample-tokens", "0", "--out", str(tmp_path / "add")]
    assert cli.main(["train"] + flags) == 0
    assert cli.main(["eval", "--ckpt", str(tmp_path / "add"), "--data", "builtin:addition", "--limit", "300",
                     "--out", str(tmp_path / "r.jsonl")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("exact match"))
    assert float(line.split()[2]) >= 90.0, line


@pytest.mark.slow
def test_lora_on_chats_under_two_ranks_equals_one_process(tmp_path, base):
    """mpiexec -n 2 with batch 2 on a LoRA chat run = one process with batch 4: the global
    batch is padded once and sharded, the loss counts every rank's answer tokens."""
    import subprocess
    import sys

    from test_ddp import ROOT, argv, env, mpiexec
    from test_grad_accum import LOSS_RTOL
    data = jsonl(tmp_path, CHATS, "chat.jsonl")
    flags = dict(preset="tiny", init_from=base, data=data, lora_rank=2, lora_targets="c_attn,c_fc",
                 **dict(SMALL, max_iters=6, eval_interval=6, dropout=0.0))
    outs = {}
    for n, batch in ((1, 4), (2, 2)):
        launcher = [mpiexec(), "-n", "2"] if n == 2 else []
        cmd = launcher + [sys.executable, "-m", "gpt.cli", "train"] + argv(**dict(flags, batch_size=batch,
                                                                                  out=str(tmp_path / f"n{n}")))
        done = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        outs[n] = [r["loss"] for r in read_metrics(tmp_path / f"n{n}" / "metrics.jsonl") if "loss" in r]
    assert outs[2] == pytest.approx(outs[1], rel=LOSS_RTOL) and len(outs[1]) == 6
    a = lora.adapter_tensors(checkpoint.load_model(tmp_path / "n1"))
    b = lora.adapter_tensors(checkpoint.load_model(tmp_path / "n2"))
    assert all(np.allclose(a[k], b[k], atol=1e-5) for k in a)
