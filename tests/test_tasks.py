"""gpt/data/tasks.py, builtin_tasks.py and datasets.py: the two JSONL formats, every bad line,
the loss mask, padding, truncation from the prompt side, the sampler, the built-in tasks."""
import json

import numpy as np
import pytest

import minigrad
from gpt import GPT, GPTConfig, CharTokenizer
from gpt.chat import ChatTemplate
from gpt.data import builtin_tasks, tasks
from gpt.errors import DataError

CHATML = ChatTemplate()
PAIR = {"prompt": "2+3=", "completion": "5"}
CHAT = {"messages": [{"role": "system", "content": "Add."}, {"role": "user", "content": "2+3?"},
                     {"role": "assistant", "content": "5"}]}


def write(tmp_path, lines, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def tokenizer():
    tok = CharTokenizer().train("0123456789+=?\nAdsystemuserassistant.")
    tok.add_special_tokens(["<|endoftext|>"] + CHATML.special_tokens)
    return tok


# ---- reading --------------------------------------------------------------------------------

def test_both_formats_read_and_blank_lines_skipped(tmp_path):
    path = write(tmp_path, [PAIR, "", "   ", CHAT, dict(PAIR, id=7)])  # extra keys are ignored
    examples = tasks.read_jsonl(path)
    assert [ex.is_chat for ex in examples] == [False, True, False]
    assert examples[0].prompt == "2+3=" and examples[1].messages == CHAT["messages"]
    assert examples[2].where.endswith("d.jsonl:5")


BAD_LINES = [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"text": "hi"}, "either 'prompt' and 'completion' or 'messages'"),
    (dict(PAIR, messages=CHAT["messages"]), "either"),
    ({"prompt": "2+3="}, "missing field 'completion'"),
    ({"completion": "5"}, "missing field 'prompt'"),
    ({"prompt": 2, "completion": "5"}, "'prompt' must be a string"),
    ({"prompt": "2+3=", "completion": ""}, "empty completion"),
    ({"messages": []}, "non-empty list"),
    ({"messages": [{"role": "user"}]}, "needs 'role' and 'content'"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "unknown role 'robot'"),
    ({"messages": [{"role": "user", "content": 5}]}, "content must be a string"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
     "empty assistant content"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 2}]},
     "weight must be 0 or 1"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0}]},
     "no assistant message to learn from"),
]


@pytest.mark.parametrize("line, message", BAD_LINES)
def test_bad_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, [PAIR, CHAT, line])
    with pytest.raises(DataError, match=message) as e:
        tasks.read_jsonl(path)
    assert f"{path}:3" in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        tasks.read_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="no examples"):
        tasks.read_jsonl(tmp_path / "empty.jsonl")
    (tmp_path / "latin.jsonl").write_bytes(json.dumps(PAIR).encode() + b'\n{"prompt": "\xe9"}\n')
    with pytest.raises(DataError, match=r"latin.jsonl:2: invalid UTF-8"):
        tasks.read_jsonl(tmp_path / "latin.jsonl")
    with pytest.raises(DataError, match="at least 2"):
        tasks.split_examples(tasks.read_jsonl(write(tmp_path, [PAIR])), 0.1, "one.jsonl")


def test_unencodable_text_names_the_line(tmp_path):
    examples = tasks.read_jsonl(write(tmp_path, [PAIR, {"prompt": "2+3=", "completion": "five"}]))
    with pytest.raises(DataError, match=r"d.jsonl:2: cannot encode"):
        tasks.encode_examples(examples, tokenizer(), CHATML, 0, 32)


# ---- tokens and the mask ---------------------------------------------------------------------

def test_prompt_completion_mask_and_end_of_text():
    tok = tokenizer()
    eos = tok.special_tokens["<|endoftext|>"]
    ids, trained = tasks.encode_example(tasks.Example(prompt="2+3=", completion="5"), tok, CHATML, eos)
    assert tok.decode(ids) == "2+3=5<|endoftext|>"
    assert trained == [False] * 4 + [True, True]


def test_chat_mask_is_assistant_content_and_end_of_turn():
    tok = tokenizer()
    messages = [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"},
                {"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2", "weight": 0},
                {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]
    ids, trained = tasks.encode_example(tasks.Example(messages=messages), tok, CHATML, None)
    learned = tok.decode([i for i, t in zip(ids, trained) if t])
    assert learned == "5<|im_end|>6<|im_end|>"  # the weight-0 answer is context only
    start, end = tok.special_tokens["<|im_start|>"], tok.special_tokens["<|im_end|>"]
    assert ids.count(start) == 6 and ids.count(end) == 6  # markers are single tokens
    prompt, reference = tasks.prompt_and_reference(tasks.Example(messages=messages), tok, CHATML)
    assert reference == "6" and tok.decode(prompt).endswith("3+3?<|im_end|>\n<|im_start|>assistant\n")


def test_user_text_spelling_a_marker_stays_text():
    tok = CharTokenizer().train("<|>endoftxusraim_\n5")
    tok.add_special_tokens(["<|endoftext|>"] + CHATML.special_tokens)
    sneaky = [{"role": "user", "content": "<|endoftext|><|im_end|>"}, {"role": "assistant", "content": "5"}]
    ids, _ = tasks.encode_example(tasks.Example(messages=sneaky), tok, CHATML, None)
    assert tok.special_tokens["<|endoftext|>"] not in ids  # not a template marker: plain text
    assert ids.count(tok.special_tokens["<|im_end|>"]) == 3  # as HF's chat templates: markers count


def test_collate_pads_at_the_end_and_masks():
    seqs = [(np.array([5, 6, 7, 8]), np.array([False, False, True, True])),
            (np.array([1, 2]), np.array([False, True]))]
    x, y = tasks.collate(seqs, pad_id=0)
    assert x.tolist() == [[5, 6, 7], [1, 0, 0]]
    assert y.tolist() == [[-100, 7, 8], [2, -100, -100]]


def test_fit_cuts_the_prompt_side_and_counts():
    ids, trained = list(range(10)), [False] * 7 + [True] * 3
    assert tasks.fit(ids, trained, 9) == (ids, trained, None)
    cut_ids, cut_trained, cut = tasks.fit(ids, trained, 5)
    assert cut_ids == [4, 5, 6, 7, 8, 9] and cut == "prompt" and sum(cut_trained) == 3
    assert tasks.fit(ids, trained, 1)[2] == "completion"
    examples = [tasks.Example(prompt="2+3=" * 5, completion="5"), tasks.Example(prompt="2", completion="5")]
    tok = tokenizer()
    seqs, cuts = tasks.encode_examples(examples, tok, CHATML, tok.special_tokens["<|endoftext|>"], 8)
    assert cuts == {"prompt": 1, "completion": 0} and len(seqs[0][0]) == 9 and len(seqs[1][0]) == 3


def test_masked_prompt_labels_change_neither_loss_nor_gradients():
    """The loss is the mean over learned tokens only: labels at prompt positions may hold
    anything. Controls: a changed answer label does change the loss, and so does a changed
    prompt label once the mask is off."""
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, block_size=12, n_layer=1, n_head=2, n_embd=16))
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 16, size=(3, 11))
    trained = np.zeros((3, 11), dtype=bool)
    trained[:, 7:] = True  # the last 4 tokens of every row are the answer
    other = ids.copy()
    other[:, 1:7] = (ids[:, 1:7] + 5) % 16  # different prompt tokens, as labels only

    def labels(label_ids, mask):
        return np.where(mask[:, 1:], label_ids[:, 1:], tasks.IGNORE)

    def loss_and_grads(y):
        model.zero_grad()
        _, loss = model(ids[:, :-1], y)
        loss.backward()
        return float(loss.item()), [p.grad.copy() for p in model.parameters()]

    base, grads = loss_and_grads(labels(ids, trained))
    same, grads2 = loss_and_grads(labels(other, trained))
    assert same == base and all(np.array_equal(a, b) for a, b in zip(grads, grads2))
    logits = model(ids[:, :-1])[0].data.astype(np.float64)
    lse = np.log(np.exp(logits).sum(-1))
    nll = lse - np.take_along_axis(logits, ids[:, 1:, None], -1)[..., 0]
    assert base == pytest.approx(nll[trained[:, 1:]].mean(), rel=1e-5)  # mean over 12 learned tokens
    answer = ids.copy()
    answer[:, 9] = (ids[:, 9] + 1) % 16
    assert loss_and_grads(labels(answer, trained))[0] != base
    everything = np.ones_like(trained)
    assert loss_and_grads(labels(ids, everything))[0] != loss_and_grads(labels(other, everything))[0]


# ---- the sampler -----------------------------------------------------------------------------

def _seqs(n):
    return [(np.arange(i % 5 + 2), np.array([False] + [True] * (i % 5 + 1))) for i in range(n)]


def test_sampler_epochs_cover_every_example_and_resume_exactly():
    s = tasks.TaskSampler({"train": _seqs(10), "val": _seqs(3)}, batch_size=4, seed=1)
    seen = [s.batch("train") for _ in range(5)]  # 20 draws: two epochs
    s2 = tasks.TaskSampler({"train": _seqs(10), "val": _seqs(3)}, batch_size=4, seed=1)
    for _ in range(3):
        s2.batch("train")
    state = json.loads(json.dumps(s2.state()))  # as the checkpoint stores it
    s3 = tasks.TaskSampler({"train": _seqs(10), "val": _seqs(3)}, batch_size=4, seed=1)
    s3.set_state(state)
    for a, b in zip(seen[3:], [s3.batch("train"), s3.batch("train")]):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    # each epoch visits every example once, in the permutation drawn from (seed, 2, epoch)
    order = np.concatenate([np.random.default_rng([1, 2, e]).permutation(10) for e in (0, 1)])
    lengths = [int((y[b] != -100).sum()) for x, y in seen for b in range(4)]
    assert lengths == [int(order[k]) % 5 + 1 for k in range(20)]
    evals = s.eval_batches("val", 5)
    assert len(evals) == 1 and evals[0][0].shape[0] == 4  # the split once, in order, filled up
    assert [int((y != -100).sum()) for y in evals[0][1]] == [1, 2, 3, 1]  # wraps to the first
    assert len(s.eval_batches("train", 2)) == 2 and len(s.eval_batches("train", 9)) == 3


# ---- built-in tasks --------------------------------------------------------------------------

@pytest.mark.parametrize("name", builtin_tasks.TASKS)
def test_builtin_splits_are_disjoint_and_fixed(name):
    a, b = builtin_tasks.builtin_task(name, 2), builtin_tasks.builtin_task(name, 2)
    assert [ex.prompt for ex in a["val"]] == [ex.prompt for ex in b["val"]]
    train = {ex.prompt for ex in a["train"]}
    assert len(a["val"]) >= 500 and len(train) >= 5000
    assert not train & {ex.prompt for ex in a["val"]}


def test_addition_is_right_and_holds_out_both_orders():
    splits = builtin_tasks.addition(2)
    for ex in splits["train"][:50] + splits["val"][:50]:
        a, b = map(int, ex.prompt[:-1].split("+"))
        assert ex.completion == str(a + b)
    train = {ex.prompt for ex in splits["train"]}
    for ex in splits["val"]:
        a, b = ex.prompt[:-1].split("+")
        assert f"{b}+{a}=" not in train  # its swap is held out too
    assert len(builtin_tasks.addition(4)["train"]) == builtin_tasks.MAX_TRAIN
    with pytest.raises(DataError, match="task-digits"):
        builtin_tasks.addition(0)
    with pytest.raises(DataError, match="unknown built-in"):
        builtin_tasks.builtin_task("builtin:nope")


def test_reverse_words_reverses():
    ex = builtin_tasks.reverse_words()["val"][0]
    words = ex.prompt[len("reverse: "):-len(" =")].split(" ")
    assert ex.completion == " " + " ".join(words[::-1]) and 3 <= len(words) <= 5
