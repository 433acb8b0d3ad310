from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import recsys_pipeline  # noqa: F401  (registers model_type "sasrec")
from recsys_pipeline.models.configuration_sasrec import VARIANTS, SASRecConfig
from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM, last_real_hidden
from recsys_pipeline.training.freezing import decay_parameter_names, freeze_rows
from recsys_pipeline_tests.conftest import REPO

VOCAB = 40  # PAD=0, items 1..36, UNK=37, BOS=38, EOS=39


def tiny_config(variant: str, **overrides) -> SASRecConfig:
    settings = dict(
        variant=variant,
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        head_dim=24,  # deliberately not hidden_size / heads: head_dim must be honoured
        intermediate_size=48,
        max_position_embeddings=32,
        hidden_dropout=0.0,
        pad_token_id=0,
        bos_token_id=38,
        eos_token_id=39,
        num_experts=4,
        num_experts_per_tok=2,
    )
    settings.update(overrides)
    return SASRecConfig(**settings)


def tiny_model(variant: str, seed: int = 0, **overrides) -> SASRecForCausalLM:
    torch.manual_seed(seed)
    return SASRecForCausalLM(tiny_config(variant, **overrides)).eval()


def random_ids(batch: int, seq: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, 37, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant", VARIANTS)
def test_causality(variant):
    model = tiny_model(variant)
    ids = random_ids(3, 12)
    changed = ids.clone()
    t = 6
    changed[:, t + 1 :] = random_ids(3, 12, seed=9)[:, t + 1 :]
    with torch.no_grad():
        a, b = model(input_ids=ids).logits, model(input_ids=changed).logits
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-5)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :], atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_left_and_right_padding_give_the_same_last_position(variant):
    model = tiny_model(variant)
    sequences = [[5, 9, 2, 7, 1], [3, 4], [8, 8, 6]]
    width = 7
    left = torch.zeros(3, width, dtype=torch.long)
    right = torch.zeros(3, width, dtype=torch.long)
    for row, seq in enumerate(sequences):
        left[row, width - len(seq) :] = torch.tensor(seq)
        right[row, : len(seq)] = torch.tensor(seq)
    with torch.no_grad():
        from_left = last_real_hidden(model, left, (left != 0).long())
        from_right = last_real_hidden(model, right, (right != 0).long())
        # the HF way for left padding: keep only the last position's logits
        kept = model(input_ids=left, attention_mask=(left != 0).long(), logits_to_keep=1).logits
        alone = [model(input_ids=torch.tensor([seq])).logits[0, -1] for seq in sequences]
    assert torch.allclose(from_left, from_right, atol=1e-5)
    assert torch.allclose(kept[:, -1], model.lm_head(from_right), atol=1e-5)
    assert torch.allclose(kept[:, -1], torch.stack(alone), atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_and_load_round_trip(tmp_path, variant):
    model = tiny_model(variant)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "sasrec" and saved["variant"] == variant
    assert saved["architectures"] == ["SASRecForCausalLM"]
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is SASRecForCausalLM and loaded.config.variant == variant
    assert {k: v for k, v in loaded.config.to_dict().items() if k != "_name_or_path"} == {
        k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"
    }
    ids = random_ids(2, 9)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded(input_ids=ids).logits)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


def test_variants_are_what_the_config_says():
    rope, learned = tiny_model("sasrec_rope"), tiny_model("sasrec")
    assert rope.model.embed_positions is None and learned.model.embed_positions is not None
    assert tiny_model("sasrec_gate").model.layers[0].mlp.gate_proj is not None
    assert rope.model.layers[0].mlp.gate_proj is None
    assert len(tiny_model("sasrec_moe").model.layers[0].mlp.experts) == 4
    attention = rope.model.layers[0].self_attn
    assert attention.q_proj.out_features == 2 * 24 and attention.o_proj.in_features == 2 * 24


def test_auto_config_for_model_builds_every_variant():
    for variant in VARIANTS:
        cfg = AutoConfig.for_model("sasrec", variant=variant, vocab_size=VOCAB, hidden_size=32)
        assert type(AutoModelForCausalLM.from_config(cfg)) is SASRecForCausalLM


def test_bad_configs_fail_before_any_work():
    with pytest.raises(ValueError, match="not divisible by num_attention_heads"):
        SASRecConfig(hidden_size=66, num_attention_heads=4)
    with pytest.raises(ValueError, match="variant='sasrec_xl'"):
        SASRecConfig(variant="sasrec_xl")
    with pytest.raises(ValueError, match="num_experts_per_tok"):
        SASRecConfig(variant="sasrec_moe", num_experts=2, num_experts_per_tok=3)


@pytest.mark.parametrize("order", ["package first", "transformers first"])
def test_registration_needs_no_trust_remote_code(tmp_path, order):
    tiny_model("sasrec_gate").save_pretrained(tmp_path)
    imports = (
        "import recsys_pipeline; from transformers import AutoModelForCausalLM"
        if order == "package first"
        else "from transformers import AutoModelForCausalLM; import recsys_pipeline"
    )
    code = f"{imports}; m = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}); print(type(m).__name__, m.config.variant)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["SASRecForCausalLM", "sasrec_gate"]


# --- the original project's size, built on the meta device -------------------------------------

ORIGINAL = dict(
    vocab_size=16_863,
    hidden_size=1024,
    num_hidden_layers=5,
    num_attention_heads=8,
    head_dim=64,
    intermediate_size=4096,
    max_position_embeddings=64,
    num_experts=4,
    num_experts_per_tok=2,
)


def expected_parameters(variant: str, config: dict = ORIGINAL, active: bool = False) -> int:
    """Count from the architecture's definition, independently of the module tree."""
    v, h, layers = config["vocab_size"], config["hidden_size"], config["num_hidden_layers"]
    head_dim = config.get("head_dim") or h // config["num_attention_heads"]
    inner, ffn = config["num_attention_heads"] * head_dim, config["intermediate_size"]
    attention = 4 * h * inner  # q, k, v, o
    norms = 2 * h
    mlp = {"sasrec": 2 * h * ffn, "sasrec_rope": 2 * h * ffn, "sasrec_gate": 3 * h * ffn}.get(
        variant
    )
    if variant == "sasrec_moe":
        experts = config["num_experts_per_tok"] if active else config["num_experts"]
        mlp = experts * 2 * h * ffn + h * config["num_experts"]  # experts + router
    positions = config["max_position_embeddings"] * h if variant == "sasrec" else 0
    seen_bias = 1
    return v * h + positions + layers * (attention + norms + mlp) + h + seen_bias  # tied head


@pytest.mark.parametrize("variant", VARIANTS)
def test_original_size_builds_on_meta_with_the_expected_parameter_count(variant):
    with torch.device("meta"):
        model = SASRecForCausalLM(SASRecConfig(variant=variant, **ORIGINAL))
    total = sum(p.numel() for p in model.parameters())
    assert total == expected_parameters(variant)
    print(f"{variant}: {total / 1e9:.3f} B parameters")
    if variant == "sasrec_moe":
        active = expected_parameters(variant, active=True)
        assert 0.18e9 < total < 0.22e9 and active < 0.65 * total
    else:
        assert 0.06e9 < total < 0.1e9


# --- MoE -----------------------------------------------------------------------------------------


def test_router_gets_a_gradient_from_the_aux_loss_alone():
    model = tiny_model("sasrec_moe").train()
    out = model(input_ids=random_ids(4, 10), attention_mask=torch.ones(4, 10, dtype=torch.long))
    out.aux_loss.backward()
    for layer in model.model.layers:
        assert layer.mlp.router.weight.grad is not None
        assert layer.mlp.router.weight.grad.abs().sum() > 0


def test_moe_eval_is_deterministic_and_reports_expert_load():
    model = tiny_model("sasrec_moe")
    ids = random_ids(4, 10)
    with torch.no_grad():
        first, second = model(input_ids=ids), model(input_ids=ids)
    assert torch.equal(first.logits, second.logits)
    assert first.expert_load.shape == (2, 4)
    assert torch.allclose(first.expert_load.sum(dim=1), torch.ones(2))


def test_moe_aux_loss_is_added_in_training_only():
    model = tiny_model("sasrec_moe", router_aux_loss_coef=0.5)
    ids = random_ids(2, 8)
    with torch.no_grad():
        evaluated = model(input_ids=ids, labels=ids)
        model.train()
        trained = model(input_ids=ids, labels=ids)
    assert trained.loss == pytest.approx(float(evaluated.loss + evaluated.aux_loss), rel=1e-5)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("experts", "top_k"), [(4, 2), (8, 1), (6, 3)])
def test_load_balancing_loss_is_mixtrals(experts, top_k, masked):
    # The contract: the model's own loss (its file must load without other models' modules)
    # equals Mixtral's reference implementation, value and gradient.
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    from recsys_pipeline.models.modeling_sasrec import load_balancing_loss

    generator = torch.Generator().manual_seed(experts * 10 + top_k)
    batch, seq = 3, 7
    logits = tuple(
        torch.randn(batch * seq, experts, generator=generator, requires_grad=True) for _ in range(3)
    )
    mask = None
    if masked:
        mask = torch.ones(batch, seq, dtype=torch.long)
        mask[0, :4] = mask[2, :1] = 0  # left padding
    ours = load_balancing_loss(logits, top_k, mask)
    ours_grads = torch.autograd.grad(ours, logits)
    theirs = load_balancing_loss_func(logits, experts, top_k, mask)
    theirs_grads = torch.autograd.grad(theirs, logits)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)
    for mine, reference in zip(ours_grads, theirs_grads, strict=True):
        assert torch.allclose(mine, reference, rtol=1e-5, atol=1e-8)


# --- loss and logits -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["sasrec", "sasrec_moe"])
def test_loss_only_at_labelled_positions_matches_full_cross_entropy(variant):
    model = tiny_model(variant)
    ids = random_ids(3, 9)
    labels = ids.clone()
    labels[0, :4] = -100
    labels[2, 7:] = -100
    with torch.no_grad():
        out = model(input_ids=ids, labels=labels)
        lean = model(input_ids=ids, labels=labels, return_logits=False)
    expected = torch.nn.functional.cross_entropy(
        out.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert out.loss == pytest.approx(float(expected), rel=1e-5)
    assert lean.logits is None and lean.loss == pytest.approx(float(out.loss), rel=1e-6)


def test_fused_linear_cross_entropy_matches_autograd():
    from recsys_pipeline.models.fused_loss import linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(300, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (300,))
    expected = torch.nn.functional.cross_entropy(hidden @ weight.t(), targets)
    expected.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    got = linear_cross_entropy(hidden, weight, targets, chunk=64)
    (2 * got).backward()  # a scaled upstream gradient is honoured
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(hidden.grad, 2 * grads[0], atol=1e-6)
    assert torch.allclose(weight.grad, 2 * grads[1], atol=1e-5)
    with torch.no_grad():
        assert linear_cross_entropy(hidden, weight, targets).item() == pytest.approx(
            expected.item(), rel=1e-6
        )


def test_fused_loss_smooths_labels_as_cross_entropy_does():
    from recsys_pipeline.models.fused_loss import linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(300, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    bias = torch.tensor([-1.5], requires_grad=True)
    targets = torch.randint(0, 50, (300,))
    index = torch.stack([torch.randperm(50)[:4] for _ in range(300)])
    valid = (torch.rand(300, 4) > 0.3).float()
    logits = (hidden @ weight.t()).scatter_add(1, index, bias * valid)
    expected = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.2)
    expected.backward()
    grads = hidden.grad.clone(), weight.grad.clone(), bias.grad.clone()
    hidden.grad = weight.grad = bias.grad = None
    got = linear_cross_entropy(
        hidden, weight, targets, chunk=64, seen=(index, valid, bias), label_smoothing=0.2
    )
    got.backward()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    for g, want in zip((hidden.grad, weight.grad, bias.grad), grads, strict=True):
        assert torch.allclose(g, want, atol=1e-5)


def test_fused_loss_in_bfloat16_stays_within_bf16_rounding_of_float32():
    from recsys_pipeline.models.fused_loss import linear_cross_entropy

    torch.manual_seed(0)
    hidden = torch.randn(300, 16, requires_grad=True)
    weight = torch.randn(500, 16, requires_grad=True)
    targets = torch.randint(0, 500, (300,))
    index = torch.randint(0, 500, (300, 5))
    valid = (torch.rand(300, 5) > 0.3).float()
    bias = torch.tensor([-1.0], requires_grad=True)
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        loss = linear_cross_entropy(
            hidden, weight, targets, chunk=64, compute_dtype=dtype, seen=(index, valid, bias)
        )
        loss.backward()
        results.append((loss.item(), hidden.grad, weight.grad, bias.grad))
        hidden.grad = weight.grad = bias.grad = None
    (loss32, *grads32), (loss16, *grads16) = results
    assert loss16 == pytest.approx(loss32, rel=1e-2)
    for g32, g16 in zip(grads32, grads16, strict=True):
        assert g16.dtype == torch.float32  # accumulated and returned in the weights' dtype
        assert ((g16 - g32).norm() / g32.norm()).item() < 2e-2


def test_output_precision_setting(monkeypatch):
    from recsys_pipeline.training import sft
    from recsys_pipeline.training.settings import SFTSettings

    assert sft.output_layer_dtype("float32", "cpu") is torch.float32
    assert sft.output_layer_dtype("bfloat16", "cpu") is torch.bfloat16
    # auto: bf16 where the one probe (models/precision.py) says bf16 matmuls are fast, else the
    # weights' or the autocast dtype
    monkeypatch.setattr(sft, "bf16_is_fast", lambda device: device == "cpu")
    assert sft.output_layer_dtype("auto", "cpu") is torch.bfloat16
    assert sft.output_layer_dtype("auto", "cuda") is None
    monkeypatch.setattr(sft, "bf16_is_fast", lambda device: False)
    assert sft.output_layer_dtype("auto", "cpu") is None
    with pytest.raises(ValueError, match="output_precision\n  Input should be 'auto', 'float32'"):
        SFTSettings(output_precision="half")


def test_one_bf16_probe_decides_for_the_text_encoder_and_the_trainer(monkeypatch):
    from recsys_pipeline.models import precision

    real = dict(torch.cpu.get_capabilities())

    def cpu_with(**flags: bool) -> None:
        # all else this CPU reports stays: only the two flags named in precision.py decide
        found = {**real, "amx_tile": False, "avx512_bf16": False, **flags}
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: found)

    for flags in ({"amx_tile": True}, {"avx512_bf16": True}):
        cpu_with(**flags)
        assert precision.fast_dtype("cpu") is torch.bfloat16
        assert not precision.trainer_bf16("cpu")  # CPUs train in float32 whatever the probe says
    cpu_with()
    assert precision.fast_dtype("cpu") is torch.float32


def test_seen_item_bias_is_learned_the_same_way_on_both_loss_paths():
    model = tiny_model("sasrec_rope").train()
    with torch.no_grad():
        model.seen_bias.fill_(-1.5)
    ids = torch.tensor([[38, 5, 9, 5, 7, 2], [38, 3, 4, 3, 0, 0]])
    mask = (ids != 0).long()
    labels = ids.masked_fill(mask == 0, -100)
    full = model(input_ids=ids, attention_mask=mask, labels=labels)
    full.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    lean = model(input_ids=ids, attention_mask=mask, labels=labels, return_logits=False)
    lean.loss.backward()
    assert lean.loss.item() == pytest.approx(full.loss.item(), rel=1e-5)
    for name, parameter in model.named_parameters():
        assert torch.allclose(parameter.grad, grads[name], atol=1e-6), name
    assert model.seen_bias.grad.abs().item() > 0
    # position 3 (item 5 again): item 5 and 9 are seen, BOS and padding never are
    logits = full.logits.detach()
    plain = model.lm_head(
        model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    ).detach()
    assert torch.allclose(logits[0, 3, [5, 9]], plain[0, 3, [5, 9]] - 1.5, atol=1e-5)
    assert torch.allclose(logits[0, 3, [38, 7, 0]], plain[0, 3, [38, 7, 0]], atol=1e-6)


def test_a_batch_without_labels_has_zero_loss():
    model = tiny_model("sasrec").train()
    ids = random_ids(2, 5)
    out = model(input_ids=ids, labels=torch.full_like(ids, -100))
    out.loss.backward()
    assert out.loss.item() == 0.0


def test_eager_and_sdpa_attention_agree():
    model = tiny_model("sasrec_rope")
    ids = random_ids(3, 10)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding
    with torch.no_grad():
        sdpa = model(input_ids=ids, attention_mask=mask).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert torch.allclose(sdpa[real], eager[real], atol=1e-5)


# --- stage-1 freezing, bf16 ----------------------------------------------------------------------


def test_frozen_item_rows_stay_bit_identical_while_the_rest_moves():
    model = tiny_model("sasrec_rope").train()
    embedding = model.model.embed_tokens.weight
    items = torch.arange(1, 37)
    before = embedding.detach().clone()
    others = {n: p.detach().clone() for n, p in model.named_parameters() if "embed_tokens" not in n}
    handle = freeze_rows(embedding, items)
    decay = set(decay_parameter_names(model))
    assert (
        "model.embed_tokens.weight" not in decay
        and "model.layers.0.self_attn.q_proj.weight" in decay
    )
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay], "weight_decay": 0.1},
        {"params": [p for n, p in model.named_parameters() if n not in decay], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    for step in range(3):
        ids = random_ids(4, 8, seed=step)
        model(
            input_ids=torch.cat([torch.full((4, 1), 38), ids], 1),
            labels=torch.cat([torch.full((4, 1), -100), ids], 1),
        ).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    handle.remove()
    assert torch.equal(embedding[items], before[items])
    assert not torch.equal(embedding[38], before[38])  # BOS is not an item row: it trains
    assert all(not torch.equal(p, others[n]) for n, p in model.named_parameters() if n in others)


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_autocast_forward_backward_on_cpu(variant):
    model = tiny_model(variant).train()
    ids = random_ids(2, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, labels=ids)
        lean = model(input_ids=ids, labels=ids, return_logits=False)
    (out.loss + lean.loss).backward()
    assert torch.isfinite(out.loss) and torch.isfinite(lean.loss)
    assert lean.loss.item() == pytest.approx(out.loss.item(), rel=0.05)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- TRL -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_trl_dpo_trainer_runs_two_steps(tmp_path, variant):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from recsys_pipeline.data.vocab import ItemVocab, build_tokenizer

    tokenizer = build_tokenizer(ItemVocab(item_ids=np.arange(1, 37)))
    model = tiny_model(variant).train()
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    pairs = Dataset.from_dict(
        {
            "prompt": ["<1><2><3>", "<4><5>", "<7><8><9><10>", "<11>"],
            "chosen": ["<4>", "<6>", "<11>", "<12>"],
            "rejected": ["<30>", "<31>", "<32>", "<33>"],
        }
    )
    args = DPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        bf16=False,
        activation_checkpointing=False,
        report_to=[],
        logging_steps=1,
        save_strategy="no",
        max_length=16,
        use_cpu=True,
    )
    trainer = DPOTrainer(
        model=model, ref_model=reference, args=args, train_dataset=pairs, processing_class=tokenizer
    )
    trainer.train()
    assert trainer.state.global_step == 2
    assert any(not torch.equal(p, start[n]) for n, p in model.named_parameters())
    assert all(torch.equal(p, start[n]) for n, p in reference.named_parameters())


def test_model_scorer_equals_the_forward_logits_at_the_last_position():
    from recsys_pipeline.data.histories import Histories
    from recsys_pipeline.data.vocab import ItemVocab
    from recsys_pipeline.models.inputs import left_padded_inputs
    from recsys_pipeline.ranking.scoring import model_scorer

    model = tiny_model("sasrec_rope", max_history_length=8)
    with torch.no_grad():
        model.seen_bias.fill_(-2.0)
    vocab = ItemVocab(item_ids=np.arange(1, 37))
    histories = Histories.from_lists([1, 2, 3], [[5, 9, 5, 7], [3], list(range(1, 30))])
    scores = model_scorer(model, vocab)(histories)
    ids, mask = left_padded_inputs(histories, vocab, max_length=8)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1]
    assert torch.allclose(scores, logits[:, 1:37], atol=1e-5)
