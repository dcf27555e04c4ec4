"""Scoring generated answers against references: exact match, token F1, ROUGE-L, BLEU.

    scores = score_answers(answers, references)   # {"exact_match", "f1", "rouge_l", "bleu", "per_example", "notes"}

Exact match and F1 are SQuAD's (its official script's normalisation: lower case, no
punctuation, no articles a/an/the, single spaces), written here because they are a
few lines. ROUGE-L and BLEU come from the scorers people quote: Google's rouge-score
(the F-measure of rougeL, no stemming, as Hugging Face evaluate's default) and
sacreBLEU (corpus BLEU on its 0-100 scale, its default 13a tokenizer), from the
optional `eval` extra. Without it those two are None, with a note naming the install.
All corpus figures are on a 0-100 scale.
"""
import re
import string
from collections import Counter

INSTALL = "pip install 'minigrad-gpt[eval]'"
_PUNCT = set(string.punctuation)


def normalize_answer(text):
    """SQuAD's normalisation. Example: normalize_answer("The  Cat's hat!") == "cats hat"."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(answer, reference):
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(answer) == normalize_answer(reference))


def token_f1(answer, reference):
    """F1 of the normalised tokens' overlap (a bag of words, as SQuAD: order does not count).

    Example: token_f1("the cat sat", "a cat sat down") == 0.8  (precision 1, recall 2/3)."""
    a, r = normalize_answer(answer).split(), normalize_answer(reference).split()
    if not a or not r:
        return float(a == r)  # both empty: a match; one empty: nothing in common
    common = sum((Counter(a) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def reference_scorers():
    """(rouge-score's scorer or None, the sacrebleu module or None, notes)."""
    notes = []
    try:
        from rouge_score import rouge_scorer
        rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    except ImportError:
        rouge = None
    try:
        import sacrebleu
    except ImportError:
        sacrebleu = None
    missing = [name for name, mod in (("rouge-score", rouge), ("sacrebleu", sacrebleu)) if mod is None]
    if missing:
        notes.append(f"ROUGE-L and BLEU skipped ({' and '.join(missing)} not installed): {INSTALL}")
    return rouge, sacrebleu, notes


def score_answers(answers, references):
    """Per-example and corpus scores of answers against references (lists of str)."""
    if len(answers) != len(references):
        raise ValueError(f"score_answers: {len(answers)} answers for {len(references)} references")
    rouge, sacrebleu, notes = reference_scorers()
    rows = []
    for answer, reference in zip(answers, references):
        row = {"exact_match": exact_match(answer, reference), "f1": token_f1(answer, reference),
               "rouge_l": None, "bleu": None}
        if rouge is not None:
            row["rouge_l"] = rouge.score(reference, answer)["rougeL"].fmeasure
        if sacrebleu is not None:
            row["bleu"] = sacrebleu.sentence_bleu(answer, [reference]).score
        rows.append(row)
    n = max(len(rows), 1)
    out = {"exact_match": 100 * sum(r["exact_match"] for r in rows) / n,
           "f1": 100 * sum(r["f1"] for r in rows) / n, "rouge_l": None, "bleu": None,
           "per_example": rows, "notes": notes}
    if rouge is not None:
        out["rouge_l"] = 100 * sum(r["rouge_l"] for r in rows) / n
    if sacrebleu is not None:
        out["bleu"] = sacrebleu.corpus_bleu(answers, [references]).score
    return out
