"""Tokenizer tests without oracles: BPE training, round trips, specials, files, errors, CLI."""
import json
import os
from collections import Counter

import pytest
from hypothesis import given, strategies as st

from conftest import shakespeare_path
from gpt import BPETokenizer, CharTokenizer, TokenizerError, load_tokenizer
from gpt import cli
from gpt.errors import DisallowedSpecialError, TokenizerFileError
from gpt.tokenizer.rules import CL100K_PATTERN, GPT2_PATTERN, bytes_to_unicode, compile_pattern, count_pairs, merge_pair
from gpt.tokenizer.trainer import train_merges

EOT = "<|endoftext|>"
SAMPLE = ("Hello, world! It's 2024... Ça va? naïve café — 東京は晴れ 😀👍🏽 e\u0301\u0301 \r\n\r\n"
          "   lots   of    space\t\ttabs\x00\x1b[0m don't WE'LL I'M 12345678 "
          "def f(x):\n    return x ** 2\n") * 3

# Text that stresses byte-level BPE: multi-byte chars, combining marks, controls, CRLF, runs.
_ALPHABET = st.sampled_from(list("ab ") + ["😀", "東", "é", "e\u0301", "\u0300", "\r\n", "\n", "\t",
                                           "\x00", "\x7f", "\u2028", "  ", "'s", "9", EOT, "\ufeff"])
TRICKY = st.one_of(st.text(), st.lists(_ALPHABET, max_size=30).map("".join),
                   st.just(""), st.just(" " * 50), st.just("\r\n" * 7))


@pytest.fixture(scope="module")
def corpus():
    with open(shakespeare_path(), encoding="utf-8") as f:
        return f.read()[:60_000]


@pytest.fixture(scope="module")
def trained(corpus):
    return BPETokenizer().train(corpus + SAMPLE, 600, special_tokens=[EOT, "<|pad|>"])


@pytest.fixture(scope="module")
def reloaded(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "bpe.tok"
    trained.save(path)
    return load_tokenizer(path)


# ----- the worked example and the training algorithm ---------------------------------------
def test_hand_worked_example():
    tok = BPETokenizer().train("aaabdaaabac", 259)
    assert tok.merges == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.vocab_size == 259


def naive_merges(chunk_counts, num_merges):
    """The textbook loop: recount every pair at every merge. Same tie-break as ours."""
    words = {tuple(c.encode()): f for c, f in chunk_counts.items()}
    merges = []
    for i in range(num_merges):
        counts = {}
        for word, f in words.items():
            count_pairs(list(word), counts, f)
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append((pair, 256 + i))
        words = {tuple(merge_pair(list(w), *pair, 256 + i)): f for w, f in words.items()}
    return merges


@given(st.lists(st.text(alphabet="abcab é", max_size=12), min_size=1, max_size=8), st.integers(1, 40))
def test_incremental_training_equals_naive_recount(words, n):
    counts = Counter(words)
    assert train_merges(counts, n) == naive_merges(counts, n)


def test_training_is_deterministic_and_reports_progress(corpus, capsys):
    seen = []
    a = BPETokenizer().train(corpus[:20_000], 400, progress=lambda *args: seen.append(args), verbose=True)
    b = BPETokenizer().train([corpus[:10_000], corpus[10_000:20_000]], 400)
    c = BPETokenizer().train(corpus[:20_000], 400)
    assert a.merges == c.merges
    assert len(b.merges) == 144
    assert seen and seen[-1][:2] == (144, 144)
    assert "merge 144/144" in capsys.readouterr().err


def test_training_stops_when_pairs_run_out():
    tok = BPETokenizer().train("ab ab", 1000)
    assert len(tok.merges) == 2 and tok.encode("ab ab") == [256, 257]


def test_specials_are_not_learned_and_follow_merges():
    tok = BPETokenizer().train(f"abcdef{EOT}{EOT}abcdef{EOT}", 260, special_tokens=[EOT])
    assert len(tok.merges) == 3 and tok.special_tokens == {EOT: 259}
    learned = [tok.token_to_bytes(i) for i in range(256, 259)]
    assert all(b"|" not in t and b"<" not in t for t in learned)


# ----- round trips ---------------------------------------------------------------------
@given(TRICKY)
def test_round_trip_trained(trained, text):
    assert trained.decode(trained.encode_ordinary(text)) == text
    assert trained.decode(trained.encode(text, allowed_special="all")) == text


@given(TRICKY)
def test_round_trip_reloaded_gives_identical_ids(trained, reloaded, text):
    ids = reloaded.encode(text, allowed_special="all")
    assert ids == trained.encode(text, allowed_special="all")
    assert reloaded.decode(ids) == text


@given(TRICKY)
def test_round_trip_other_patterns(text):
    for pattern in ("cl100k", r"\w+|\s+|[^\w\s]+"):
        tok = _small(pattern)
        assert tok.decode(tok.encode_ordinary(text)) == text


_SMALL = {}


def _small(pattern):
    if pattern not in _SMALL:
        _SMALL[pattern] = BPETokenizer(pattern=pattern).train(SAMPLE, 300)
    return _SMALL[pattern]


def test_save_load_file_is_stable(trained, tmp_path):
    trained.save(tmp_path / "a.tok")
    BPETokenizer.load(tmp_path / "a.tok").save(tmp_path / "b.tok")
    assert (tmp_path / "a.tok").read_text("utf-8") == (tmp_path / "b.tok").read_text("utf-8")
    assert "\n256 " in (tmp_path / "a.tok").read_text("utf-8")  # human-readable vocab lines


def test_hf_export_import_round_trip(trained, tmp_path):
    trained.save_hf(tmp_path)
    again = BPETokenizer.from_hf(tmp_path)
    assert again.special_tokens == trained.special_tokens
    assert again.encode(SAMPLE + EOT, allowed_special="all") == trained.encode(SAMPLE + EOT, allowed_special="all")
    assert (tmp_path / "merges.txt").read_text("utf-8").startswith("#version: 0.2\n")


def test_tokenizer_json_without_vocab_files(trained, tmp_path):
    vocab = {"".join(bytes_to_unicode()[b] for b in trained.token_to_bytes(i)): i
             for i in range(trained.vocab_size - 2)}
    merges = [[_vis(trained, a), _vis(trained, b)] for (a, b), _ in trained.merges]
    spec = {"added_tokens": [{"id": i, "content": s, "special": True} for s, i in trained.special_tokens.items()],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "model": {"type": "BPE", "vocab": vocab, "merges": merges}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), "utf-8")
    tok = BPETokenizer.from_hf(tmp_path)
    assert tok.encode(SAMPLE + EOT, allowed_special="all") == trained.encode(SAMPLE + EOT, allowed_special="all")


def _vis(tok, i):
    return "".join(bytes_to_unicode()[b] for b in tok.token_to_bytes(i))


# ----- special tokens (tiktoken semantics) -----------------------------------------------
def test_special_token_rules(trained):
    eot, pad = trained.special_tokens[EOT], trained.special_tokens["<|pad|>"]
    text = f"a{EOT}b<|pad|>"
    with pytest.raises(DisallowedSpecialError, match="endoftext"):
        trained.encode(text)
    with pytest.raises(ValueError):
        trained.encode(text, allowed_special={EOT})  # <|pad|> is still disallowed
    assert trained.encode(text, allowed_special="all").count(eot) == 1
    ids = trained.encode(text, allowed_special={EOT}, disallowed_special=())
    assert eot in ids and pad not in ids
    assert trained.encode(text, disallowed_special="none") == trained.encode_ordinary(text)
    assert eot not in trained.encode_ordinary(text)
    assert trained.decode([eot]) == EOT
    with pytest.raises(TokenizerError, match="unknown special"):
        trained.encode("x", allowed_special={"<|nope|>"})
    assert trained.encode_batch(["a", EOT], allowed_special="all") == [trained.encode("a"), [eot]]


# ----- patterns ----------------------------------------------------------------------------
def test_patterns_by_name_custom_and_bad():
    assert BPETokenizer(pattern="gpt2").pattern == GPT2_PATTERN
    assert BPETokenizer(pattern="cl100k").pattern == CL100K_PATTERN
    assert compile_pattern(CL100K_PATTERN).findall("Hello  world123456") == ["Hello", " ", " world", "123", "456"]
    custom = BPETokenizer(pattern=r"(\w+)|\W")  # groups are fine: whole matches are used
    assert custom.decode(custom.encode("hi, you")) == "hi, you"
    with pytest.raises(TokenizerError, match="does not compile"):
        BPETokenizer(pattern="(unclosed")


# ----- errors ------------------------------------------------------------------------------
def test_bad_inputs_are_clear_errors(trained):
    with pytest.raises(TokenizerError, match="unknown token id 99999"):
        trained.decode([1, 99999])
    with pytest.raises(TokenizerError, match="unknown token id"):
        trained.token_to_bytes(-1)
    with pytest.raises(TokenizerError, match="smaller than 256 bytes"):
        BPETokenizer().train("hello", 257, special_tokens=["<a>", "<b>"])
    with pytest.raises(TokenizerError, match="empty"):
        BPETokenizer().train(["", ""], 300)
    assert trained.decode([0xE6]) == "\ufffd"  # a lone UTF-8 lead byte, replaced
    assert trained.decode_bytes([0xE6]) == b"\xe6"
    assert trained.decode(trained.encode("a\ud800b")) == "a\ufffdb"  # lone surrogate, as tiktoken


@pytest.mark.parametrize("damage, where", [
    (lambda lines: lines[:40], "truncated"),
    (lambda lines: lines[:7] + ["7 \x01"] + lines[8:], "line 8"),
    (lambda lines: lines[:-1], "truncated"),
    (lambda lines: ["minigrad-tokenizer 9 bpe"] + lines[1:], "line 1"),
    (lambda lines: ["hello"] + lines[1:], "not a minigrad tokenizer"),
    (lambda lines: lines[:300] + ["1 2 x"] + lines[301:], "line 301"),
])
def test_corrupt_files_name_file_and_line(trained, tmp_path, damage, where):
    path = tmp_path / "t.tok"
    trained.save(path)
    lines = path.read_text("utf-8").split("\n")[:-1]
    path.write_text("\n".join(damage(lines)) + "\n", "utf-8")
    with pytest.raises(TokenizerFileError, match=where) as info:
        load_tokenizer(path)
    assert str(path) in str(info.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(TokenizerFileError, match="no such file"):
        load_tokenizer(tmp_path / "nope.tok")
    (tmp_path / "bin.tok").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TokenizerFileError, match="not UTF-8"):
        load_tokenizer(tmp_path / "bin.tok")
    (tmp_path / "bad.tiktoken").write_text("YQ== 0\n!!!! 1\n")
    with pytest.raises(TokenizerFileError, match="line 2"):
        BPETokenizer.from_tiktoken(tmp_path / "bad.tiktoken")
    with pytest.raises(TokenizerFileError, match="no vocab.json"):
        BPETokenizer.from_hf(tmp_path)


# ----- char tokenizer ------------------------------------------------------------------------
def test_char_tokenizer(corpus, tmp_path):
    tok = CharTokenizer().train(corpus)
    assert tok.chars == sorted(set(corpus)) and tok.vocab_size == len(set(corpus))
    ids = tok.encode(corpus[:1000])
    assert tok.decode(ids) == corpus[:1000] and max(ids) < tok.vocab_size
    tok.save(tmp_path / "c.tok")
    again = load_tokenizer(tmp_path / "c.tok")
    assert isinstance(again, CharTokenizer) and again.chars == tok.chars
    with pytest.raises(TokenizerError, match="not in the"):
        tok.encode("日本")
    with pytest.raises(TokenizerError, match="unknown token id"):
        tok.decode([tok.vocab_size])
    with pytest.raises(TokenizerError, match="not a BPE"):
        BPETokenizer.load(tmp_path / "c.tok")


@given(st.text())
def test_char_round_trip(text):
    tok = CharTokenizer().train(text or "x")
    assert tok.decode(tok.encode(text)) == text


# ----- adding special tokens (chat markers, end-of-text) -----------------------------------
CHAT = ["<|im_start|>", "<|im_end|>"]


def test_bpe_add_special_tokens_after_the_largest_id_and_saved(trained, tmp_path):
    tok = BPETokenizer.load(_saved(trained, tmp_path))
    n = tok.vocab_size
    assert tok.add_special_tokens(CHAT + [EOT]) == 2  # EOT is there already
    assert {s: tok.special_tokens[s] for s in CHAT} == {"<|im_start|>": n, "<|im_end|>": n + 1}
    assert tok.vocab_size == n + 2 and tok.add_special_tokens(CHAT) == 0
    text = "<|im_start|>user\nhi<|im_end|>"
    ids = tok.encode(text, allowed_special=set(CHAT))
    assert ids[0] == n and ids[-1] == n + 1 and tok.decode(ids) == text
    assert tok.encode(text, disallowed_special=()) == tok.encode_ordinary(text)  # text stays text
    with pytest.raises(DisallowedSpecialError):
        tok.encode(text)
    for reread in (BPETokenizer.load(_saved(tok, tmp_path)), _hf_round_trip(tok, tmp_path)):
        assert reread.special_tokens == tok.special_tokens
        assert reread.encode(text, allowed_special="all") == ids
    with pytest.raises(TokenizerError, match="list of str"):
        tok.add_special_tokens("<|x|>")
    with pytest.raises(TokenizerError, match="non-empty"):
        tok.add_special_tokens([""])


def _saved(tok, tmp_path):
    tok.save(tmp_path / "t.txt")
    return tmp_path / "t.txt"


def _hf_round_trip(tok, tmp_path):
    tok.save_hf(tmp_path / "hf")
    return BPETokenizer.from_hf(tmp_path / "hf")


def test_char_special_tokens_rules_and_file(tmp_path):
    tok = CharTokenizer().train("ab<|>imstardne_\n")
    before = tok.vocab_size
    tok.save(tmp_path / "old.tok")
    old_format = (tmp_path / "old.tok").read_text()
    assert "special" not in old_format  # no specials: the file is exactly the old format
    assert tok.add_special_tokens(CHAT) == 2 and tok.vocab_size == before + 2
    assert tok.special_tokens == {"<|im_start|>": before, "<|im_end|>": before + 1}
    text = "<|im_start|>ab<|im_end|>"
    assert tok.encode(text, allowed_special="all") == [before] + tok.encode_ordinary("ab") + [before + 1]
    assert tok.decode(tok.encode(text, allowed_special="all")) == text
    assert len(tok.encode(text, disallowed_special=())) == len(text)  # specials spelled out: chars
    with pytest.raises(DisallowedSpecialError):
        tok.encode(text)
    tok.save(tmp_path / "new.tok")
    again = load_tokenizer(tmp_path / "new.tok")
    assert again.special_tokens == tok.special_tokens and again.chars == tok.chars
    assert again.token_to_bytes(before + 1) == b"<|im_end|>"
    retrained = CharTokenizer(special_tokens=CHAT).train("xyz")  # specials follow the new chars
    assert retrained.special_tokens == {"<|im_start|>": 3, "<|im_end|>": 4}
    bad = (tmp_path / "new.tok").read_text().replace(f"{before} ", "1 ", 1)  # an id a char has
    (tmp_path / "bad.tok").write_text(bad)
    with pytest.raises(TokenizerFileError, match="collides"):
        load_tokenizer(tmp_path / "bad.tok")


# ----- CLI ---------------------------------------------------------------------------------
def test_cli_train_encode_decode_stats(tmp_path, monkeypatch, capsys):
    import io
    data = tmp_path / "in.txt"
    data.write_text(SAMPLE, "utf-8")
    out = tmp_path / "t.tok"
    assert cli.main(["tokenizer", "train", "--data", str(data), "--vocab-size", "300",
                     "--out", str(out), "--special", EOT, "--quiet"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("Hello world"))
    assert cli.main(["tokenizer", "encode", "--tokenizer", str(out)]) == 0
    ids = capsys.readouterr().out.split()
    monkeypatch.setattr("sys.stdin", io.StringIO(" ".join(ids)))
    assert cli.main(["tokenizer", "decode", "--tokenizer", str(out)]) == 0
    assert capsys.readouterr().out == "Hello world"
    assert cli.main(["tokenizer", "encode", "--tokenizer", str(out), "--data", str(data)]) == 0  # a file
    (tmp_path / "ids.txt").write_text(capsys.readouterr().out)
    assert cli.main(["tokenizer", "decode", "--tokenizer", str(out), "--data", str(tmp_path / "ids.txt")]) == 0
    assert capsys.readouterr().out == SAMPLE
    assert cli.main(["tokenizer", "stats", "--tokenizer", str(out), "--data", str(data)]) == 0
    assert "bytes/token" in capsys.readouterr().out
    assert cli.main(["tokenizer", "train", "--data", str(data), "--vocab-size", "10", "--out", str(out)]) == 2
    assert "smaller than" in capsys.readouterr().err
    assert cli.main(["tokenizer", "train", "--input", str(data), "--vocab-size", "300", "--out", str(out),
                     "--quiet"]) == 0  # the flag's earlier name still works
