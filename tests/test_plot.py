"""`gpt plot RUN [RUN ...]`: the curves drawn are the runs' metrics.jsonl values; bad input
is one line and exit 2."""
import json

import pytest

from conftest import require
from gpt import cli
from gpt.train.progress import plot_runs


def write_run(folder, rows, torn=False):
    (folder / "ckpt").mkdir(parents=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (folder / "metrics.jsonl").write_text(text + ('{"iter": 9, "lo' if torn else ""))
    return folder


def rows(scale, n=6, every=3):
    out = []
    for i in range(1, n + 1):
        r = {"iter": i, "loss": scale / i, "lr": 1e-3 * i, "tokens_per_s": 100.0 + i}
        if i % every == 0:
            r.update(train_loss=scale / i, val_loss=scale / i + 0.1)
        out.append(r)
    return out


def test_default_is_each_runs_train_and_val_loss(tmp_path, capsys):
    require("matplotlib")
    a = write_run(tmp_path / "a", rows(4.0), torn=True)  # a run killed mid-line still plots
    b = write_run(tmp_path / "b", rows(2.0, n=3))
    out = tmp_path / "cmp.png"
    assert cli.main(["plot", str(a), str(b / "ckpt"), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and f"wrote {out}" in capsys.readouterr().out
    curves = plot_runs({"a": rows(4.0), "b": rows(2.0, n=3)}, tmp_path / "x.png")
    assert curves == {"a train": ([1, 2, 3, 4, 5, 6], [4.0 / i for i in range(1, 7)]),
                      "a val": ([3, 6], [4.0 / 3 + 0.1, 4.0 / 6 + 0.1]),
                      "b train": ([1, 2, 3], [2.0, 1.0, 2.0 / 3]), "b val": ([3], [2.0 / 3 + 0.1])}


def test_any_field_by_name(tmp_path):
    require("matplotlib")
    curves = plot_runs({"a": rows(4.0)}, tmp_path / "lr.png", metric="lr")
    assert curves == {"a": ([1, 2, 3, 4, 5, 6], pytest.approx([1e-3 * i for i in range(1, 7)]))}
    a = write_run(tmp_path / "a", rows(4.0))
    assert cli.main(["plot", str(a / "metrics.jsonl"), "--metric", "tokens_per_s",
                     "--out", str(tmp_path / "t.png")]) == 0


@pytest.mark.parametrize("argv,message", [
    (["{a}", "--metric", "nope"], "no run has values of nope; the runs' fields are: loss, lr, tokens_per_s, "
                                  "train_loss, val_loss"),
    (["{a}", "{tmp}/missing"], "missing: no metrics.jsonl there"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    require("matplotlib")
    a = write_run(tmp_path / "a", rows(1.0))
    argv = [x.format(a=a, tmp=tmp_path) for x in argv]
    assert cli.main(["plot"] + argv + ["--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ")
    assert not (tmp_path / "p.png").exists()


def test_without_matplotlib_names_the_install(tmp_path, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    a = write_run(tmp_path / "a", rows(1.0))
    assert cli.main(["plot", str(a), "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err == "error: gpt plot needs matplotlib: pip install 'minigrad-gpt[plot]'\n"
