"""gpt/data/: reading, cleaning, splitting, encoding, caching and batching a corpus."""
import numpy as np
import pytest

from gpt import data
from gpt.data import corpus
from gpt.config import DataConfig
from gpt.errors import DataError


def dcfg(path=None, **kw):
    return DataConfig(data=None if path is None else str(path), **{"tokenizer": "char", **kw})


def test_file_and_folder(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "skip.md").write_text("not a .txt")
    text, sources = corpus.read_corpus(tmp_path)
    assert text == "first\n\nsecond\n"  # sorted, one blank line between files
    assert [s.rsplit("/", 1)[1] for s in sources] == ["a.txt", "b.txt"]
    assert corpus.read_corpus(tmp_path / "b.txt")[0] == "second"


def test_bad_corpora_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .txt files"):
        corpus.read_corpus(tmp_path / "empty")
    with pytest.raises(DataError, match="no such file"):
        corpus.read_corpus(tmp_path / "missing.txt")
    (tmp_path / "blank.txt").write_text("  \n\n")
    with pytest.raises(DataError, match="empty"):
        data.load_text(dcfg(tmp_path / "blank.txt"))


def test_invalid_utf8_names_file_and_offset(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello \xff world")
    with pytest.raises(DataError, match=r"bad\.txt: invalid UTF-8 at byte offset 6"):
        corpus.read_corpus(bad)
    text, _ = corpus.read_corpus(bad, errors="replace")
    assert text == "hello \ufffd world"
    assert issubclass(DataError, ValueError)


def test_builtin_corpus_is_pydoc_topics():
    from pydoc_data.topics import topics
    text = data.builtin_corpus()
    assert len(text) > 100_000 and text.startswith(topics[sorted(topics)[0]])
    assert corpus.read_corpus(None)[1] == [data.BUILTIN]


def test_preprocess_steps_and_switches():
    raw = "a\r\nb\rc\x00d\x07\te\u0301\nx\nx\n\n\n"
    text, notes = corpus.preprocess(raw, dcfg(dedup_lines=True))
    assert text == "a\nb\ncd\t\u00e9\nx\n\n\n"  # blank lines are never deduplicated
    assert len(notes) == 4
    kept, notes = corpus.preprocess(raw, dcfg(normalize_newlines=False, nfc=False, keep_control=True))
    assert kept == raw and notes == []


def test_split_and_encode_dtypes():
    train, val = data.split_text("0123456789", 0.2)
    assert (train, val) == ("01234567", "89")

    class Big:
        vocab_size = 70000

        def encode(self, text):
            return [69999] * len(text)
    assert data.encode(Big(), "ab").dtype == np.uint32
    tok = data.build_tokenizer(dcfg(), "abc", "abcd")
    assert data.encode(tok, "dcba").dtype == np.uint16  # char vocab from the whole text


def test_bpe_trained_on_train_split_only():
    dc = dcfg(tokenizer="bpe", vocab_size=260)
    train = "abcdefgh abcdefgh abcdefgh "
    tok = data.build_tokenizer(dc, train, train + "zzzz zzzz zzzz zzzz")
    learned = {tok.token_to_bytes(i) for i in range(256, 260)}
    assert tok.vocab_size == 260 and b"ab" in learned and b"zz" not in learned


def test_unknown_tokenizer_and_unencodable_text(tmp_path):
    with pytest.raises(DataError, match="'char', 'bpe' or a tokenizer file"):
        data.build_tokenizer(dcfg(tokenizer="nope"), "a", "a")
    tok = data.build_tokenizer(dcfg(), "ab", "ab")
    with pytest.raises(DataError, match="cannot encode"):
        data.encode(tok, "abc")


def test_too_short_split_is_rejected():
    ids = {"train": np.arange(100), "val": np.arange(8)}
    with pytest.raises(DataError, match="val split has 8 tokens, fewer than block_size \\+ 1 = 9"):
        data.check_lengths(ids, 8)
    data.check_lengths(ids, 7)


def test_cache_is_reused_only_for_the_same_key(tmp_path):
    tok = data.build_tokenizer(dcfg(), "abcd", "abcd")
    splits = {"train": "abcabc", "val": "dd"}
    ids = data.encode_cached(tok, splits, tmp_path, "k1")
    assert ids["train"].tolist() == [0, 1, 2, 0, 1, 2] and ids["train"].dtype == np.uint16
    assert isinstance(ids["train"], np.memmap)
    again = data.encode_cached(tok, {"train": "zzzz", "val": "zz"}, tmp_path, "k1")  # cached: not re-encoded
    assert again["train"].tolist() == [0, 1, 2, 0, 1, 2]
    fresh = data.encode_cached(tok, {"train": "dd", "val": "aa"}, tmp_path, "k2")
    assert fresh["train"].tolist() == [3, 3]


def test_batches_are_shifted_windows_and_resumable():
    ids = {"train": np.arange(50, dtype=np.uint16), "val": np.arange(100, 120, dtype=np.uint16)}
    s = data.BatchSampler(ids, block_size=8, batch_size=4, seed=0)
    x, y = s.batch()
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    assert (y == x + 1).all() and (np.diff(x, axis=1) == 1).all() and x.max() < 49
    state = s.state()
    a = s.batch()
    s.set_state(state)
    assert all((p == q).all() for p, q in zip(a, s.batch()))
    e1, e2 = s.eval_batches("val", 3), s.eval_batches("val", 3)  # the same windows each time
    assert all((p[0] == q[0]).all() for p, q in zip(e1, e2)) and e1[0][0].min() >= 100
    b = data.BatchSampler(ids, 8, 4, seed=0)
    assert (b.batch()[0] == x).all()  # same seed, same batches


def test_shortest_possible_split_gives_the_one_window():
    s = data.BatchSampler({"train": np.arange(9)}, block_size=8, batch_size=2, seed=1)
    x, y = s.batch()
    assert x.tolist() == [list(range(8))] * 2 and y[0].tolist() == list(range(1, 9))
