"""The model card (README.md) a checkpoint folder carries: Hugging Face's format, the facts of
the run that saved it, and loading code that runs as written."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys

import yaml

from recsys_pipeline.data.vocab import build_tokenizer
from recsys_pipeline.training.dpo import train_dpo
from recsys_pipeline.training.model_card import CARD_FILE, CardFacts, model_card
from recsys_pipeline.training.negatives import MiningSettings
from recsys_pipeline.training.pairs import build_pairs
from recsys_pipeline.training.settings import DPOSettings, SFTSettings
from recsys_pipeline.training.validation import RankingEvalSet
from recsys_pipeline_tests.conftest import REPO
from recsys_pipeline_tests.test_checkpoint_portability import run_without_package
from recsys_pipeline_tests.test_models import tiny_config, tiny_model
from recsys_pipeline_tests.test_preference import VOCAB as DPO_VOCAB
from recsys_pipeline_tests.test_preference import random_split, vectors
from recsys_pipeline_tests.test_training import TINY, VOCAB, run_tiny_sft, tiny_split

SECTIONS = [
    "## What it is",
    "## Intended use and limits",
    "## Training data",
    "## Training settings",
    "## Validation metrics",
    "## How to load it",
    "## License",
]


def front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, flags=re.DOTALL)
    assert match, card[:200]
    return yaml.safe_load(match.group(1))


def python_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, flags=re.DOTALL)


def test_the_card_states_the_facts_it_was_given():
    facts = CardFacts(
        stage="SFT",
        summary="A summary of how it was made.",
        config=tiny_config("sasrec_rope").to_dict(),
        items=36,
        data={"users with a validation target": 12_345, "items in the catalog": 36},
        settings={
            "learning_rate": 0.0123,
            "loss_type": ["sigmoid", "sft"],
            "head_dim": None,
            "seed": 7,
        },
        history=[
            ("stage 2, epoch 1", {"train loss": 3.21, "hr@10": 0.1111, "ndcg@10": 0.0555}),
            ("stage 2, epoch 2", {"train loss": float("nan"), "hr@10": 0.2222, "ndcg@10": 0.0777}),
        ],
        validation={"hr@10": 0.2222, "ndcg@10": 0.0777},
        notes=["A note about the run."],
        libraries={"python": "3.11.0", "torch": "9.9.9"},
    )
    card = model_card(facts)
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["license"] == "mit"
    assert "pipeline_tag" not in meta  # recommendation is not a Hub pipeline
    assert meta["tags"] == [
        "recommendation",
        "sequential-recommendation",
        "sasrec",
        "sasrec_rope",
        "custom_code",
    ]
    assert [line for line in card.splitlines() if line.startswith("## ")] == SECTIONS
    assert "# SASRec next-item recommender (`sasrec_rope`), SFT checkpoint" in card
    assert "A summary of how it was made." in card and "- A note about the run." in card
    assert "| users with a validation target | 12,345 |" in card
    assert "| items in the catalog | 36 |" in card
    assert "| `learning_rate` | 0.0123 |" in card
    assert "| `loss_type` | sigmoid, sft |" in card
    assert "| `head_dim` | None |" in card
    assert "| | train loss | hr@10 | ndcg@10 |" in card
    assert "| stage 2, epoch 1 | 3.2100 | 0.1111 | 0.0555 |" in card
    assert "| stage 2, epoch 2 | – | 0.2222 | 0.0777 |" in card
    assert "**The model in this folder: hr@10 0.2222, ndcg@10 0.0777.**" in card
    assert "- Seed: 7 (one training run)." in card
    assert "one training run (seed 7), so they carry no spread" in card
    assert "three training seeds" in card and "README" in card
    assert "- Libraries: python 3.11.0, torch 9.9.9." in card
    assert "1:37]" in card  # the scoring snippet keeps the 36 item columns
    assert "License" in card and "MIT" in card


def test_an_sft_checkpoint_carries_its_card_and_the_card_loads_it_both_ways(tmp_path):
    settings = SFTSettings(**TINY, variant="sasrec_moe", init="random", stage2_epochs=2)
    report = run_tiny_sft(tmp_path, settings)
    folder = tmp_path / "out"
    build_tokenizer(VOCAB).save_pretrained(folder)  # as the pipeline does beside the model
    card = (folder / CARD_FILE).read_text()
    assert front_matter(card)["tags"][3] == "sasrec_moe"
    assert f"| `stage2_epochs` | {settings.stage2_epochs} |" in card
    for epoch in report.epochs:
        assert f"| stage {epoch.stage}, epoch {epoch.epoch} |" in card
    saved = ", ".join(f"{k} {v:.4f}" for k, v in report.best_metrics.items())
    assert f"**The model in this folder: {saved}.**" in card
    assert f"| users with a validation target | {len(tiny_split().validation()[1])} |" in card

    with_package, without_package, scoring = python_blocks(card)
    path = repr(str(folder))
    scoring += "print(tokenizer.convert_ids_to_tokens(top10[0].tolist()))\n"
    scoring += "print(type(model).__module__)\n"
    runs = [
        subprocess.run(
            [sys.executable, "-c", (with_package + scoring).replace('"path/to/this/folder"', path)],
            cwd=REPO,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        ),
        run_without_package(
            (without_package + scoring).replace('"path/to/this/folder"', path), tmp_path
        ),
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr[-3000:]
    (top_a, module_a), (top_b, module_b) = (done.stdout.splitlines()[-2:] for done in runs)
    assert module_a == "recsys_pipeline.models.modeling_sasrec"
    assert module_b.startswith("transformers_modules.out.")
    assert top_a == top_b
    items = ast.literal_eval(top_a)
    assert len(items) == 10 and all(re.fullmatch(r"<\d+>", token) for token in items)


def test_a_dpo_checkpoint_carries_its_card(tmp_path):
    split = random_split()
    sft = tmp_path / "sft"
    tiny_model("sasrec_gate").save_pretrained(sft)
    pairs = build_pairs(split, DPO_VOCAB, vectors(), 5, MiningSettings())
    validation = RankingEvalSet(*split.validation(), DPO_VOCAB)
    settings = DPOSettings(batch_size=8, beta=0.25, save_steps=1000)
    report = train_dpo(
        sft,
        pairs,
        DPO_VOCAB,
        validation,
        settings,
        tmp_path / "work",
        tmp_path / "out",
        log=lambda _: None,
    )
    card = (tmp_path / "out" / CARD_FILE).read_text()
    assert front_matter(card)["library_name"] == "transformers"
    assert "# SASRec next-item recommender (`sasrec_gate`), DPO checkpoint" in card
    assert "| `beta` | 0.2500 |" in card
    assert f"| preference pairs (history, chosen next item, rejected item) | {len(pairs)} |" in card
    before = " | ".join(f"{v:.4f}" for v in report.valid_before.values())
    after = " | ".join(f"{v:.4f}" for v in report.valid_after.values())
    assert f"| SFT model, before DPO | {before} |" in card
    assert f"| after DPO (this folder) | {after} |" in card
