"""A Hugging Face GPT-2 folder as a user has one (config.json + model.safetensors, with the
tokenizer as vocab.json + merges.txt and as tokenizer.json), through our loader and the `gpt`
command: same ids as HF's tokenizers, `gpt sample --temperature 0` gives transformers' greedy
text, `gpt eval` its loss, and `gpt train --init-from` fine-tunes it into a folder that
transformers opens with the same logits. Everything is built locally inside the tests.
"""
import shutil

import numpy as np
import pytest

import minigrad as mg
from conftest import require
from gpt import checkpoint, cli, load_tokenizer
from gpt.data import builtin_corpus
from test_tokenizer_parity import VARIED

EOT = "<|endoftext|>"
PROMPT = "The function returns a list of"
SMALL = ("The quick brown fox jumps over the lazy dog. Every object has an identity, a type and a "
         "value. A list is a mutable sequence; a tuple is not. ") * 12


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """(folder, HF tokenizer, transformers model): a byte-level BPE trained by HF `tokenizers`
    and a random GPT2LMHeadModel of its vocabulary, saved side by side like a real checkpoint."""
    tokenizers = require("tokenizers")
    torch = require("torch")
    transformers = require("transformers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=500, special_tokens=[EOT], show_progress=False,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([builtin_corpus()[:150_000], SMALL], trainer=trainer)
    folder = tmp_path_factory.mktemp("hf-gpt2")
    tok.save(str(folder / "tokenizer.json"))
    tok.model.save(str(folder))  # vocab.json + merges.txt
    torch.manual_seed(0)
    eot = tok.token_to_id(EOT)
    cfg = transformers.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=48, n_layer=2,
                                  n_head=4, bos_token_id=eot, eos_token_id=eot, attn_implementation="eager")
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # larger than init, so greedy decoding wanders over the vocabulary
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(folder)
    return folder, tok, model


def hf_greedy_text(tok, model, prompt, n):
    torch = require("torch")
    ids = torch.tensor([tok.encode(prompt).ids])
    with torch.no_grad():  # an explicit mask: HF would mask prompt tokens equal to pad_token_id
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                             eos_token_id=None, pad_token_id=0)[0].tolist()
    return out, tok.decode(out, skip_special_tokens=False)


def test_folder_tokenizer_gives_hf_ids(hf_folder, tmp_path):
    folder, tok, _ = hf_folder
    transformers = require("transformers")
    auto = transformers.AutoTokenizer.from_pretrained(str(folder))
    ours = load_tokenizer(str(folder))  # vocab.json + merges.txt
    only_json = tmp_path / "json"
    only_json.mkdir()
    shutil.copy(folder / "tokenizer.json", only_json)
    from_json = load_tokenizer(str(only_json))
    for text in VARIED + [SMALL, f"a{EOT}b", builtin_corpus()[-3000:]]:
        expected = tok.encode(text).ids
        assert auto(text)["input_ids"] == expected, text
        assert ours.encode(text, allowed_special="all") == expected, text
        assert from_json.encode(text, allowed_special="all") == expected, text
        assert ours.decode(expected) == tok.decode(expected, skip_special_tokens=False)


@pytest.mark.parametrize("stream", [False, True])
def test_cli_sample_greedy_matches_transformers(hf_folder, capsys, stream):
    folder, tok, model = hf_folder
    _, expected = hf_greedy_text(tok, model, PROMPT, 20)
    args = ["sample", "--ckpt", str(folder), "--prompt", PROMPT, "--temperature", "0", "--max-new-tokens", "20"]
    assert cli.main(args + (["--stream"] if stream else [])) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_cli_sample_endoftext_prompt(hf_folder, capsys):
    """GPT-2's unconditional prompt: <|endoftext|> is its special token, as in HF."""
    folder, tok, model = hf_folder
    ids, expected = hf_greedy_text(tok, model, EOT, 12)
    assert ids[0] == tok.token_to_id(EOT)
    assert cli.main(["sample", "--ckpt", str(folder), "--prompt", EOT, "--temperature", "0",
                     "--max-new-tokens", "12"]) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_cli_sample_needs_a_tokenizer(hf_folder, tmp_path, capsys):
    folder, tok, model = hf_folder
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(folder / name, bare)
    args = ["sample", "--ckpt", str(bare), "--prompt", PROMPT, "--temperature", "0", "--max-new-tokens", "5"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "has no tokenizer: looked for tokenizer.txt, vocab.json + merges.txt, tokenizer.json" in err
    assert cli.main(args + ["--tokenizer", str(folder)]) == 0
    assert capsys.readouterr().out == hf_greedy_text(tok, model, PROMPT, 5)[1] + "\n"


def test_cli_refuses_a_bad_folder_in_one_line(hf_folder, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(hf_folder[0], bad)
    (bad / "model.safetensors").unlink()
    (bad / "pytorch_model.bin").write_bytes(b"not unpickled")
    assert cli.main(["sample", "--ckpt", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pytorch_model.bin (a pickle)" in err and "Traceback" not in err


def test_cli_eval_gives_transformers_loss(hf_folder, tmp_path, capsys):
    """A text shorter than the context is one window: the mean next-token loss is HF's."""
    torch = require("torch")
    folder, tok, model = hf_folder
    text = SMALL[:110]
    ids = tok.encode(text).ids
    assert 2 < len(ids) <= 64 + 1  # inputs ids[:-1] fit the 64 positions
    with torch.no_grad():
        expected = float(model(torch.tensor([ids]), labels=torch.tensor([ids])).loss)
    (tmp_path / "held.txt").write_text(text)
    assert cli.main(["eval", "--ckpt", str(folder), "--data", str(tmp_path / "held.txt")]) == 0
    loss = float(capsys.readouterr().out.split("loss ")[1].split()[0])
    assert loss == pytest.approx(expected, abs=1e-4)


def test_train_init_from_hf_folder_and_back_to_transformers(hf_folder, tmp_path, capsys):
    transformers = require("transformers")
    folder, tok, _ = hf_folder
    (tmp_path / "small.txt").write_text(SMALL)
    out = tmp_path / "ft"
    assert cli.main(["train", "--init-from", str(folder), "--data", str(tmp_path / "small.txt"),
                     "--out", str(out), "--max-iters", "3", "--block-size", "32", "--batch-size", "2",
                     "--eval-interval", "3", "--eval-iters", "1", "--sample-tokens", "0"]) == 0
    printed = capsys.readouterr().out
    assert "a Hugging Face GPT-2 folder, positions cropped to 32" in printed and "iter 3/3" in printed

    ours, tokenizer, state = checkpoint.load(out)
    assert state["iter"] == 3 and ours.config.block_size == 32
    assert tokenizer.encode(SMALL) == tok.encode(SMALL).ids  # the folder's tokenizer, kept
    before = checkpoint.load_model(folder).state_dict()["transformer.h.0.mlp.c_fc.weight"]
    assert not np.array_equal(ours.state_dict()["transformer.h.0.mlp.c_fc.weight"], before)  # it trained

    theirs = transformers.GPT2LMHeadModel.from_pretrained(str(out / "ckpt"), attn_implementation="eager").eval()
    idx = np.random.default_rng(0).integers(0, ours.config.vocab_size, (2, 32))
    torch = require("torch")
    with torch.no_grad():
        expected = theirs(torch.from_numpy(idx)).logits.numpy()
    with mg.no_grad():
        assert np.abs(ours.eval()(idx)[0].data - expected).max() < 1e-4


def test_train_init_from_cannot_grow_the_context(hf_folder, tmp_path, capsys):
    (tmp_path / "small.txt").write_text(SMALL)
    assert cli.main(["train", "--init-from", str(hf_folder[0]), "--data", str(tmp_path / "small.txt"),
                     "--out", str(tmp_path / "ft"), "--block-size", "128", "--max-iters", "1"]) == 2
    assert "keeps the checkpoint's 64 positions; --block-size 128 can only lower it" in capsys.readouterr().err
