"""gpt/cli.py and gpt/config.py: flags generated from the config, presets, errors, and an
end-to-end train -> sample -> eval through `gpt.cli.main`."""
import dataclasses
import math
import typing

import numpy as np
import pytest

from gpt import cli, evaluate
from gpt.config import GROUPS, MODEL_FLAGS_SKIP, PRESETS, TrainConfig, build_config, explicit_flags
from gpt.errors import ConfigError

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))


def parse(argv):
    return cli.build_parser().parse_args(["train"] + argv)


def test_every_config_field_has_a_typed_flag():
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a for a in train._actions if a.option_strings}
    for cls in GROUPS.values():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if cls is GROUPS["model"] and f.name in MODEL_FLAGS_SKIP:
                continue  # the model's vocab_size comes from the tokenizer; --vocab-size is the BPE size
            assert f.name in flags, f"no flag for {f.name}"
            action = flags[f.name]
            assert "--" + f.name.replace("_", "-") in action.option_strings
            base = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
            if base[0] is bool:
                assert "--no-" + f.name.replace("_", "-") in action.option_strings
            else:
                assert action.type is base[0]
            assert "default" in action.help


def test_flags_override_preset_override_defaults():
    cfg = build_config(explicit_flags(parse([])))
    assert cfg == build_config({})  # a bare `gpt train` is the default preset
    cfg = build_config(explicit_flags(parse(["--preset", "shakespeare-char", "--n-layer", "2",
                                             "--no-bias", "--lr", "3e-4"])))
    assert (cfg.model.n_layer, cfg.model.block_size, cfg.optim.batch_size) == (2, 64, 12)
    assert cfg.optim.lr == 3e-4 and cfg.model.bias is False and cfg.run.preset == "shakespeare-char"
    assert explicit_flags(parse(["--bias"])) == {"bias": True}


def test_shakespeare_char_is_nanogpts_recipe():
    cfg = build_config({"preset": "shakespeare-char"})
    m, o = cfg.model, cfg.optim
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size, m.dropout) == (4, 4, 128, 64, 0.0)
    assert (o.batch_size, o.max_iters, o.lr, o.min_lr, o.warmup_iters) == (12, 2000, 1e-3, 1e-4, 100)
    assert (o.beta1, o.beta2, o.weight_decay, o.grad_clip) == (0.9, 0.99, 0.1, 1.0)
    assert cfg.data.tokenizer == "char" and cfg.data.val_fraction == 0.1
    assert set(PRESETS) == set(dataclasses.fields(GROUPS["run"])[0].metadata["choices"])


@pytest.mark.parametrize("argv", [["--n-layer", "two"], ["--lr", "fast"], ["--preset", "huge"],
                                  ["--errors", "ignore"], ["--bias", "yes"]])
def test_bad_flag_values_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(argv)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def test_inconsistent_values_are_config_errors():
    with pytest.raises(ConfigError, match="divisible"):
        build_config({"n_embd": 100, "n_head": 3})
    with pytest.raises(ConfigError, match="exclude"):
        build_config({"resume": True, "init_from": "x"})
    with pytest.raises(ConfigError, match="lr must be float"):
        build_config({"lr": "x"})


def test_config_round_trips_through_json_dict():
    cfg = build_config({"preset": "shakespeare-char", "data": "a.txt"})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_help_lists_flags_with_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for text in ["--n-layer", "--no-nfc", "--dedup-lines", "--resume", "--init-from", "(default: 4)"]:
        assert text in out


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.txt", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no .txt files"),
    (lambda p: (p / "short.txt").write_text("abc" * 10) and p / "short.txt", "fewer than block_size"),
    (lambda p: (p / "bad.txt").write_bytes(b"ok\n\xc3(") and p / "bad.txt", "byte offset 3"),
])
def test_bad_corpus_is_one_line_exit_2(tmp_path, capsys, make, message):
    code = cli.main(["train", "--preset", "tiny", "--data", str(make(tmp_path)), "--out",
                     str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_train_sample_eval_end_to_end(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    assert cli.main(["train", "--preset", "tiny", "--data", str(corpus), "--out", str(out),
                     "--n-embd", "16", "--block-size", "16", "--max-iters", "12",
                     "--eval-interval", "6", "--sample-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    assert "iter 12/12" in printed and "sample:" in printed and (out / "metrics.jsonl").exists()

    assert cli.main(["sample", "--ckpt", str(out), "--prompt", "line", "--max-new-tokens", "10",
                     "--seed", "3", "--num-samples", "2"]) == 0
    two = capsys.readouterr().out
    assert two.count("line") >= 2
    assert cli.main(["sample", "--ckpt", str(out / "ckpt"), "--prompt", "line", "--max-new-tokens",
                     "10", "--seed", "3", "--stream"]) == 0
    streamed = capsys.readouterr().out
    assert streamed.strip() == two.split("\n" + "-" * 40)[0].strip()  # same seed, same text

    held = tmp_path / "held.txt"
    held.write_text(TEXT[:500])
    assert cli.main(["eval", "--ckpt", str(out), "--data", str(held)]) == 0
    report = capsys.readouterr().out
    loss = float(report.split("loss ")[1].split()[0])
    ppl = float(report.split("perplexity ")[1].split()[0])
    bpb = float(report.split("bits per byte ")[1].split()[0])
    assert ppl == pytest.approx(math.exp(loss), rel=1e-3)
    assert bpb == pytest.approx(loss / math.log(2), rel=1e-3)  # ASCII: one byte per char token
    assert cli.main(["eval", "--ckpt", str(out), "--data", str(held), "--stride", "4"]) == 0
    capsys.readouterr()  # the int8 check below reads the int8 eval's line, not this one's
    assert cli.main(["eval", "--ckpt", str(out), "--data", str(held), "--quantize", "int8"]) == 0
    assert float(capsys.readouterr().out.split("loss ")[1].split()[0]) == pytest.approx(loss, rel=0.02)
    assert cli.main(["sample", "--ckpt", str(out), "--prompt", "line", "--max-new-tokens", "10",
                     "--quantize", "int8", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("line")
    assert cli.main(["sample", "--ckpt", str(tmp_path / "nope")]) == 2


def test_eval_windows_score_every_target_once():
    for n, block, stride in [(10, 4, 4), (10, 4, 1), (11, 4, 3), (5, 8, 8), (2, 4, 2)]:
        wins = evaluate.windows(n, block, stride)
        scored = [t for b, e, k in wins for t in range(e - k + 1, e + 1)]
        assert scored == list(range(1, n)), (n, block, stride, wins)
        assert all(e - b <= block and k <= e - b for b, e, k in wins)


def test_score_tokens_matches_the_model_loss(tmp_path):
    from gpt.model import GPT, GPTConfig
    import minigrad
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ids = np.random.default_rng(0).integers(0, 11, 17)
    with minigrad.no_grad():
        _, loss = model(ids[None, :8], ids[None, 1:9])
        _, loss2 = model(ids[None, 8:16], ids[None, 9:17])
    nats = evaluate.score_tokens(model, ids, 8, 8, 4)
    assert nats == pytest.approx(8 * (float(loss.item()) + float(loss2.item())), rel=1e-5)
