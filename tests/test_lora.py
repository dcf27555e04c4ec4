"""gpt/lora.py: adapters on a frozen GPT (gradients, the inference path, merging, PEFT's target
matching), and PEFT as the oracle both ways: PEFT opens our adapter folder and gives our
logits, and our reader opens an adapter PEFT wrote and gives PEFT's."""
import json

import numpy as np
import pytest

import minigrad
from conftest import require
from gpt import GPT, GPTConfig, inference, lora
from gpt.errors import CheckpointError, ConfigError

CFG = dict(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16)


def model(seed=0, **over):
    minigrad.manual_seed(seed)
    return GPT(GPTConfig(**dict(CFG, **over))).eval()


def randomize_adapters(m, seed=1):
    """B starts at zero (the model starts as its base); give every adapter a real update."""
    rng = np.random.default_rng(seed)
    for mod in m.modules():
        if isinstance(mod, lora.LoRAConv1D):
            mod.lora_B.weight.data[...] = rng.normal(0, 0.2, mod.lora_B.weight.shape)
    if isinstance(m.transformer.wte, lora.TrainableTokens):
        m.transformer.wte.trainable_tokens_delta.data += rng.normal(0, 0.5, (1,) + m.transformer.wte.
                                                                    trainable_tokens_delta.shape[1:])


IDS = np.random.default_rng(0).integers(0, 43, size=(2, 12))


def adapted(targets=("c_attn",), tokens=True, r=4, alpha=8.0, **spec):
    """A base model (saved nowhere), grown by 3 tokens if `tokens`, with adapters."""
    m = model()
    m.resize_token_embeddings(43 if tokens else 40)
    cfg = lora.AdapterConfig(r=r, alpha=alpha, targets=list(targets),
                             token_indices=[40, 41, 42] if tokens else [], **spec)
    n = lora.apply_lora(m, cfg)
    return m, cfg, n


def test_starts_as_the_base_and_only_adapters_train():
    base = model()
    base.resize_token_embeddings(43)
    m, _, n = adapted(targets=["c_attn", "c_fc"])
    assert np.array_equal(m(IDS)[0].data, base(IDS)[0].data)  # B = 0
    trainable = [name for name, p in m.named_parameters() if p.requires_grad]
    assert trainable[0] == "transformer.wte.trainable_tokens_delta"
    assert all(".lora_" in t for t in trainable[1:]) and len(trainable) == 1 + 2 * 2 * 2
    assert n == 3 * 16 + 2 * (4 * 16 + 48 * 4) + 2 * (4 * 16 + 64 * 4)
    m.train()
    _, loss = m(IDS[:, :-1], IDS[:, 1:])
    loss.backward()
    assert all((p.grad is not None) == p.requires_grad for p in m.parameters())
    opt = m.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    assert sum(len(g["params"]) for g in opt.param_groups) == len(trainable)


def test_inference_path_and_merge_give_the_forward_logits():
    m, _, _ = adapted(targets=["c_attn", "attn.c_proj"])
    randomize_adapters(m)
    full = m(IDS)[0].data
    assert np.abs(inference.forward(m, IDS) - full[:, -1]).max() < 1e-5  # sampling reads adapters
    lora.merge(m)
    assert type(m.transformer.h[0].attn.c_attn) is lora.Conv1D and m.lm_head.weight is m.transformer.wte.weight
    assert np.abs(m(IDS)[0].data - full).max() < 1e-5
    assert all(p.requires_grad for p in m.parameters())


@pytest.mark.parametrize("targets, wrapped", [
    (["c_attn"], {"attn.c_attn"}),
    (["c_proj"], {"attn.c_proj", "mlp.c_proj"}),          # PEFT: any path ending in .c_proj
    (["attn.c_proj", "c_fc"], {"attn.c_proj", "mlp.c_fc"}),
    (r"transformer\.h\.1\.mlp\.c_(fc|proj)", {"mlp.c_fc", "mlp.c_proj"}),  # a str: full-path regex
])
def test_targets_match_as_peft_does(targets, wrapped):
    m = model()
    lora.apply_lora(m, lora.AdapterConfig(r=2, targets=targets))
    found = {name.split(".", 3)[3] for name, mod in m.named_modules() if isinstance(mod, lora.LoRAConv1D)}
    assert found == wrapped


@pytest.mark.parametrize("targets, message", [(["q_proj"], "match no module"),
                                              (["wte"], "adapters wrap the Conv1D"),
                                              (["ln_1"], "adapters wrap the Conv1D")])
def test_bad_targets(targets, message):
    with pytest.raises(ConfigError, match=message):
        lora.apply_lora(model(), lora.AdapterConfig(r=2, targets=targets))


def test_our_reader_round_trips_our_files(tmp_path):
    m, cfg, _ = adapted(targets=["c_attn", "c_fc"], alpha=16.0)
    randomize_adapters(m)
    lora.save_adapter(m, cfg, tmp_path)
    again = model()
    again.resize_token_embeddings(43)
    spec = lora.load_adapter(again, tmp_path)
    assert spec.r == 4 and spec.scaling == 4.0 and spec.token_indices == [40, 41, 42]
    assert np.array_equal(again(IDS)[0].data, m(IDS)[0].data)


@pytest.mark.parametrize("edit, message", [
    (dict(peft_type="IA3"), "only LORA"),
    (dict(use_dora=True), "use_dora"),
    (dict(modules_to_save=["wte"]), "modules_to_save"),
    (dict(bias="all"), "bias"),
    (dict(rank_pattern={"c_attn": 2}), "rank_pattern"),
    (dict(r=0), "integer r >= 1"),
    (dict(target_modules=["c_attn", "c_fc"]), "do not fit the targets"),   # no c_fc tensors saved
    (dict(trainable_token_indices=[40, 41]), "token rows do not match"),
])
def test_reader_refuses_what_it_cannot_compute(tmp_path, edit, message):
    m, cfg, _ = adapted()
    lora.save_adapter(m, cfg, tmp_path)
    path = tmp_path / lora.CONFIG_NAME
    path.write_text(json.dumps(dict(json.loads(path.read_text()), **edit)))
    fresh = model()
    fresh.resize_token_embeddings(43)
    with pytest.raises(CheckpointError, match=message):
        lora.load_adapter(fresh, tmp_path)


def test_reader_checks_shapes_and_vocabulary(tmp_path):
    m, cfg, _ = adapted(r=4)
    lora.save_adapter(m, cfg, tmp_path)
    path = tmp_path / lora.CONFIG_NAME
    path.write_text(json.dumps(dict(json.loads(path.read_text()), r=2)))
    grown = model()
    grown.resize_token_embeddings(43)
    with pytest.raises(CheckpointError, match="has shape"):
        lora.load_adapter(grown, tmp_path)
    with pytest.raises(CheckpointError, match="token row 42"):
        lora.load_adapter(model(), tmp_path)  # 40 rows: the adapter's new tokens do not fit
    (tmp_path / lora.CONFIG_NAME).write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        lora.read_config(tmp_path)


# ---- PEFT as the oracle ----------------------------------------------------------------------

def _hf(base_dir, vocab):
    transformers = require("transformers")
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(base_dir))
    if vocab != hf.config.vocab_size:
        hf.resize_token_embeddings(vocab)  # rows the adapter then overwrites (PEFT's recipe)
    return hf.eval()


@pytest.mark.parametrize("targets, tokens", [(["c_attn"], True), (["c_attn", "c_proj", "c_fc"], False)])
def test_peft_opens_our_adapter_and_gives_our_logits(tmp_path, targets, tokens):
    torch, peft = require("torch"), require("peft")
    model().save_pretrained(tmp_path / "base")
    m, cfg, _ = adapted(targets=targets, tokens=tokens, alpha=12.0)
    cfg.base = str(tmp_path / "base")
    randomize_adapters(m)
    lora.save_adapter(m, cfg, tmp_path / "adapter")
    hf = peft.PeftModel.from_pretrained(_hf(tmp_path / "base", 43 if tokens else 40), str(tmp_path / "adapter"))
    ids = IDS if tokens else IDS % 40
    with torch.no_grad():
        theirs = hf(torch.tensor(ids)).logits.numpy()
    assert np.abs(theirs - m(ids)[0].data).max() < 1e-4


def test_we_open_an_adapter_peft_wrote(tmp_path):
    torch, peft = require("torch"), require("peft")
    model().save_pretrained(tmp_path / "base")
    torch.manual_seed(0)
    hf = _hf(tmp_path / "base", 42)
    config = peft.LoraConfig(r=3, lora_alpha=5, target_modules=["c_attn", "mlp.c_proj"], fan_in_fan_out=True,
                             init_lora_weights=False, use_rslora=True, trainable_token_indices=[40, 41],
                             task_type="CAUSAL_LM")
    pm = peft.get_peft_model(hf, config)
    with torch.no_grad():  # new rows' trained values: anything but the base's
        delta = pm.base_model.model.transformer.wte.token_adapter.trainable_tokens_delta["default"]
        delta.copy_(torch.randn_like(delta))
    pm.save_pretrained(str(tmp_path / "peft"))
    pm.eval()
    ids = IDS % 42
    with torch.no_grad():
        theirs = pm(torch.tensor(ids)).logits.numpy()
    ours = model()
    ours.resize_token_embeddings(42)
    spec = lora.load_adapter(ours, tmp_path / "peft")
    assert spec.use_rslora and spec.scaling == pytest.approx(5 / np.sqrt(3))
    assert np.abs(ours(ids)[0].data - theirs).max() < 1e-4
    assert np.abs(inference.forward(ours, ids) - theirs[:, -1]).max() < 1e-4


def test_gradients_equal_peft_training_the_same_adapter(tmp_path):
    """One masked loss, backward in both: every trainable tensor's gradient (LoRA A and B, the
    new token rows reaching both the embedding and the tied head) equals PEFT's."""
    torch, peft = require("torch"), require("peft")
    model().save_pretrained(tmp_path / "base")
    m, cfg, _ = adapted(targets=["c_attn", "c_fc"], tokens=True)
    randomize_adapters(m)
    lora.save_adapter(m, cfg, tmp_path / "adapter")
    x, y = IDS[:, :-1], IDS[:, 1:].copy()
    y[:, :4] = -100  # a prompt: no loss there
    m.train()
    _, loss = m(x, y)
    loss.backward()
    pm = peft.PeftModel.from_pretrained(_hf(tmp_path / "base", 43), str(tmp_path / "adapter"), is_trainable=True)
    logits = pm.train()(torch.tensor(x)).logits
    theirs = torch.nn.functional.cross_entropy(logits.reshape(-1, 43), torch.tensor(y).reshape(-1), ignore_index=-100)
    theirs.backward()
    assert float(loss.item()) == pytest.approx(float(theirs), rel=1e-5)
    grads = {name: p.grad for name, p in pm.named_parameters() if p.requires_grad}
    ours = {n: p.grad for n, p in m.named_parameters() if p.requires_grad}
    assert len(grads) == len(ours) == 9
    for name, g in ours.items():
        key = "base_model.model." + (name.replace(".weight", ".default.weight") if ".lora_" in name else
                                     "transformer.wte.token_adapter.trainable_tokens_delta.default")
        assert np.abs(grads[key].numpy() - g).max() < 1e-6 * max(1.0, np.abs(g).max()), name
