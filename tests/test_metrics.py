"""gpt/metrics.py: exact match and token F1 against hand-worked examples (SQuAD's rules),
ROUGE-L and BLEU against hand-worked values and the reference scorers themselves, and the
note when the `eval` extra is missing."""
import sys

import pytest

from conftest import require
from gpt import metrics

# (answer, reference, exact match, F1), each worked by hand below
HAND_WORKED = [
    ("47", "47", 1.0, 1.0),
    ("The Cat!", "cat", 1.0, 1.0),                 # case, punctuation and "the" go
    ("  a  cat's hat ", "cats hat", 1.0, 1.0),     # the apostrophe goes: "cats"
    ("the cat sat", "a cat sat down", 0.0, 0.8),   # cat sat | cat sat down: P 2/2, R 2/3 -> 0.8
    ("cat cat", "cat", 0.0, 2 / 3),                # overlap 1: P 1/2, R 1/1 -> 2/3
    ("sat cat", "cat sat", 0.0, 1.0),              # a bag of words: order does not count
    ("dog", "cat", 0.0, 0.0),
    ("the", "a", 1.0, 1.0),                        # both normalise to nothing: a match
    ("the", "cat", 0.0, 0.0),
    ("42.", "4.2", 1.0, 1.0),                      # "42" == "42": SQuAD drops every punctuation mark
]


@pytest.mark.parametrize("answer, reference, em, f1", HAND_WORKED)
def test_exact_match_and_f1_hand_worked(answer, reference, em, f1):
    assert metrics.exact_match(answer, reference) == em
    assert metrics.token_f1(answer, reference) == pytest.approx(f1)


def test_normalisation_is_squads():
    assert metrics.normalize_answer("An Apple, the  Banana; AND a pear.") == "apple banana and pear"
    assert metrics.normalize_answer("theory anatomy") == "theory anatomy"  # articles as whole words only


def test_corpus_scores_hand_worked():
    require("rouge_score")
    require("sacrebleu")
    out = metrics.score_answers(["the cat sat on the mat", "a dog"], ["the cat sat on the mat", "the dog ran"])
    assert out["exact_match"] == 50.0
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)  # dog | dog ran: P 1, R 1/2
    # ROUGE-L F: identical -> 1; "a dog" vs "the dog ran" (rouge-score keeps articles): LCS 1,
    # P 1/2, R 1/3 -> F = 2 * (1/6) / (5/6) = 0.4
    assert out["rouge_l"] == pytest.approx(100 * (1 + 0.4) / 2)
    assert [r["rouge_l"] for r in out["per_example"]] == pytest.approx([1.0, 0.4])
    assert out["per_example"][0]["bleu"] == pytest.approx(100.0)
    assert out["notes"] == []


def test_rouge_and_bleu_equal_the_reference_scorers():
    rouge_scorer = require("rouge_score.rouge_scorer")
    sacrebleu = require("sacrebleu")
    answers = ["the quick brown fox jumps", "over the lazy dog", "hello there world", "x"]
    references = ["the quick brown fox jumped", "over a lazy dog today", "hello world", "y z"]
    out = metrics.score_answers(answers, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = [scorer.score(r, a)["rougeL"].fmeasure for a, r in zip(answers, references)]
    assert [r["rouge_l"] for r in out["per_example"]] == pytest.approx(expected)
    assert out["rouge_l"] == pytest.approx(100 * sum(expected) / 4)
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(answers, [references]).score)
    assert 0 < out["bleu"] < 100


def test_missing_extra_skips_rouge_and_bleu_with_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "rouge_score", None)  # import raises ImportError
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    out = metrics.score_answers(["a cat"], ["the cat"])
    assert out["rouge_l"] is None and out["bleu"] is None and out["exact_match"] == 100.0
    assert out["notes"] == ["ROUGE-L and BLEU skipped (rouge-score and sacrebleu not installed): "
                            "pip install 'minigrad-gpt[eval]'"]
    assert out["per_example"][0]["rouge_l"] is None


def test_lengths_must_match():
    with pytest.raises(ValueError, match="2 answers for 1 references"):
        metrics.score_answers(["a", "b"], ["a"])
