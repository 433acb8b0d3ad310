"""The model card (README.md) of a checkpoint folder, in the Hugging Face format (YAML front
matter, then prose), written from the training run's own report: every figure in it was measured
by the run that saved the model beside it."""

from __future__ import annotations

import importlib.metadata
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCardData

from recsys_pipeline.data.split import MIN_SPLIT_LENGTH
from recsys_pipeline.ranking.metrics import TOP_K

# The reports arrive as dicts (what training_report.json and dpo_report.json hold): importing
# sft or dpo here, even for type checking, would put each one's code into the other's code
# version (assets/code_versions.py follows every import).
if TYPE_CHECKING:
    from transformers import PreTrainedConfig

    from recsys_pipeline.training.settings import DPOSettings, SFTSettings

CARD_FILE = "README.md"
LICENSE = "mit"  # the project's (pyproject.toml)


@dataclass(frozen=True)
class CardFacts:
    """What a card states about one training run."""

    stage: str  # "SFT" or "DPO"
    summary: str  # how this checkpoint was made, one paragraph
    config: Mapping[str, object]  # the saved model's config
    items: int  # in the catalog (the vocabulary's item tokens are 1..items)
    data: Mapping[str, int]  # what it was trained and validated on, counted
    settings: Mapping[str, object]  # the training settings as run, the seed among them
    history: list[tuple[str, Mapping[str, float]]]  # validation rows (label, metrics) in order
    validation: Mapping[str, float]  # the validation metrics of the model in the folder
    notes: list[str] = field(default_factory=list)  # facts of the run worth a line each
    libraries: Mapping[str, str] = field(default_factory=dict)


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Python's and the named distributions' installed versions, for the card."""
    return {"python": platform.python_version()} | {
        name: importlib.metadata.version(name) for name in names
    }


def write_model_card(folder: Path, facts: CardFacts) -> None:
    """Write ``folder/README.md``."""
    (Path(folder) / CARD_FILE).write_text(model_card(facts), encoding="utf-8")


def model_card(facts: CardFacts) -> str:
    """The card's text: YAML front matter (Hugging Face's ModelCardData), then its sections."""
    config = facts.config
    variant = str(config["variant"])
    # No pipeline_tag: recommendation is not one of the Hub's pipelines, and "text-generation"
    # would offer a text widget for a model whose tokens are item ids.
    front = ModelCardData(
        library_name="transformers",
        license=LICENSE,
        tags=list(
            dict.fromkeys(
                ["recommendation", "sequential-recommendation", "sasrec", variant, "custom_code"]
            )
        ),
    ).to_yaml()
    sections = [
        f"---\n{front}\n---",
        f"# SASRec next-item recommender (`{variant}`), {facts.stage} checkpoint",
        _what_it_is(facts),
        _use_and_limits(config),
        _training_data(facts),
        _training_settings(facts),
        _validation(facts),
        _how_to_load(facts),
        "## License\n\nThe code and these weights: MIT, the license of the recsys_pipeline "
        "project that trained them. The data the model learned from keeps its own terms.",
    ]
    return "\n\n".join(sections) + "\n"


def _what_it_is(facts: CardFacts) -> str:
    config = facts.config
    return f"""## What it is

{facts.summary}

A decoder-only sequential recommender of the SASRec family, as a Hugging Face causal language
model whose tokens are items: variant `{config["variant"]}` (defined in `configuration_sasrec.py`
in this folder), {config["num_hidden_layers"]} layers, hidden size {config["hidden_size"]},
{config["num_attention_heads"]} attention heads, output layer tied to the item embeddings. Its
{config["vocab_size"]:,} tokens are PAD (0), the catalog's {facts.items:,} items (token ids 1 to
{facts.items:,}), then UNK, BOS and EOS. It reads `[BOS, the user's most recent items, oldest
first]` (at most {config["max_history_length"]} items) and its logits at the last position score
every item as the user's next one."""


def _use_and_limits(config: Mapping[str, object]) -> str:
    seen = (
        "It learned one penalty on the items already in the input (`seen_item_bias`) but does "
        "not exclude them: remove them when ranking if repeats are unwanted."
        if config.get("seen_item_bias")
        else "It does not exclude items already in the input: remove them when ranking if "
        "repeats are unwanted."
    )
    return f"""## Intended use and limits

Intended for ranking the next item for users of the catalog it was trained on (top-k
recommendation from a purchase history), and for reproducing the project's results.

- It knows only the items of its catalog: an item id outside it is UNK and is never recommended;
  a new catalog needs a new training run.
- It learned from past purchase sequences, so it favours what was bought together and often
  then; it knows nothing of price, stock, age ratings or content, and it was not evaluated for
  fairness across groups of users.
- Its scores rank items; they are not calibrated purchase probabilities. Rank the item tokens
  only, never the special tokens.
- {seen}
- Not a text model: it generates no text, and text pipelines do not apply to it."""


def _training_data(facts: CardFacts) -> str:
    rows = "\n".join(f"| {name} | {count:,} |" for name, count in facts.data.items())
    return f"""## Training data

| | count |
|---|---|
{rows}

Split: leave-one-out per user, in time order. Each user's last item is the test
target, the one before it the validation target, and everything before that is training data;
users with fewer than {MIN_SPLIT_LENGTH} items cannot be split and are training data only. No
test target was a training example or chose this model."""


def _training_settings(facts: CardFacts) -> str:
    rows = "\n".join(f"| `{name}` | {_value(value)} |" for name, value in facts.settings.items())
    libraries = ", ".join(f"{name} {version}" for name, version in facts.libraries.items())
    notes = "".join(f"\n- {note}" for note in facts.notes)
    return f"""## Training settings

| setting | value |
|---|---|
{rows}

- Seed: {facts.settings["seed"]} (one training run).
- Libraries: {libraries or "not recorded"}.{notes}"""


def _validation(facts: CardFacts) -> str:
    columns = list(dict.fromkeys(name for _, metrics in facts.history for name in metrics))
    header = "| | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns)
    rows = "\n".join(
        f"| {label} | " + " | ".join(_value(metrics.get(c, "")) for c in columns) + " |"
        for label, metrics in facts.history
    )
    saved = ", ".join(f"{name} {value:.4f}" for name, value in facts.validation.items())
    seed = facts.settings["seed"]
    return f"""## Validation metrics

Each validation user's target (the item before their last) is ranked from the items before it
against every item of the catalog (full ranking; special tokens excluded; items already in the
history not excluded). HR@{TOP_K}: share of users whose target is in the top {TOP_K};
NDCG@{TOP_K}: mean of 1 / log2(rank + 1) where rank <= {TOP_K}, else 0; MRR@{TOP_K}: mean of
1 / rank where rank <= {TOP_K}, else 0. Equal scores rank the smaller item id first.

{header}
{rows}

**The model in this folder: {saved}.**

These figures come from one training run (seed {seed}), so they carry no spread, and the
same validation targets were used to choose this model, which makes them optimistic. The
project's figures over three training seeds (mean ± std), on the test targets beside the
validation ones, are in the recsys_pipeline README's Results and its docs/results.md (the
protocol: docs/evaluation.md); the pipeline's test metrics for this run are in its `evaluation`
artifact (`metrics.json`)."""


def _how_to_load(facts: CardFacts) -> str:
    recent = facts.config["max_history_length"]
    return f"""## How to load it

With the recsys_pipeline package installed, importing it registers the model family with the
Auto classes, and the package's own code runs (no `trust_remote_code`):

```python
import recsys_pipeline  # registers model_type "sasrec"
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("path/to/this/folder").eval()
```

Anywhere else, with only torch and transformers, the modeling code in this folder
(`modeling_sasrec.py`, `configuration_sasrec.py`, `fused_loss.py`; read it first) runs:

```python
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("path/to/this/folder", trust_remote_code=True).eval()
```

Scoring, with the item tokenizer the pipeline saves beside the model (item ids are spelled
`<id>`; BOS is added and padding is on the left):

```python
from transformers import PreTrainedTokenizerFast  # a plain tokenizer: it needs no model code

tokenizer = PreTrainedTokenizerFast.from_pretrained("path/to/this/folder")
history = ["<12>", "<345>", "<6>"]  # a user's item ids, oldest first
batch = tokenizer(["".join(history[-{recent}:])], return_tensors="pt")
scores = model(**batch, logits_to_keep=1).logits[:, -1, 1:{facts.items + 1}]  # the items only
top10 = scores.topk(10).indices + 1  # item token ids; tokenizer.convert_ids_to_tokens names them
```"""


def _value(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"  # an epoch too short to log a training loss
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def sft_card(
    report: Mapping[str, Any],
    settings: SFTSettings,
    config: PreTrainedConfig,
    *,
    users: int,
    validation_users: int,
    items: int,
    windows: int,
    targets: int,
) -> CardFacts:
    """The card facts of an SFT run: ``train_sft``'s report as a dict, and its data counted."""
    epochs = report["epochs"]
    history = [
        (f"stage {e['stage']}, epoch {e['epoch']}", {"train loss": e["train_loss"], **e["metrics"]})
        for e in epochs
    ]
    stages = (
        "stage 1 trained with the item rows of the embeddings, initialised from the items' text "
        "vectors, frozen, then stage 2 trained everything"
        if any(e["stage"] == 1 for e in epochs)
        else f"one stage trained everything (item rows initialised: {settings.init})"
    )
    notes = [
        f"Trained on {report['device']}: {report['train_seconds']:.0f} s of training, "
        f"{report['wall_seconds']:.0f} s in all; {report['parameters']:,} parameters.",
    ]
    if (averaged := report["averaged"]) is not None:
        kept = "kept: it validated better" if averaged["kept"] else "not kept"
        names = ", ".join(averaged["checkpoints"])
        notes.append(f"Mean weights of stage 2's checkpoints {names}: {kept}.")
    notes += _resumed(report)
    return CardFacts(
        stage="SFT",
        summary="Trained by recsys_pipeline's `sft_checkpoint` step: supervised next-item "
        f"training with the Hugging Face Trainer; {stages}, keeping the epoch with the best "
        f"validation NDCG@{TOP_K} and stopping early.",
        config=config.to_dict(),
        items=items,
        data={
            "users (training parts; users too short to split train on their whole history)": users,
            "users with a validation target": validation_users,
            "items in the catalog": items,
            f"training windows (at most {settings.max_history_length} items each)": windows,
            "next-item targets trained on, per epoch": targets,
        },
        settings=settings.model_dump(),
        history=history,
        validation=report["best_metrics"],
        notes=notes,
        libraries=library_versions(("torch", "transformers", "accelerate")),
    )


def dpo_card(
    report: Mapping[str, Any],
    settings: DPOSettings,
    config: PreTrainedConfig,
    *,
    validation_users: int,
    items: int,
) -> CardFacts:
    """The card facts of a DPO run: ``train_dpo``'s report as a dict, and its data counted."""
    notes = [
        f"{report['steps']:,} optimizer steps, {report['train_seconds']:.0f} s of training.",
        "The rejected items were mined to avoid every item of the user's whole sequence, the "
        "held-out validation and test targets included.",
        *_resumed(report),
    ]
    return CardFacts(
        stage="DPO",
        summary="Tuned by recsys_pipeline's `dpo_checkpoint` step: direct preference "
        "optimisation (TRL's DPOTrainer) of the SFT model, which also served as the frozen "
        "reference, on (history, chosen next item, mined rejected item) pairs. Where the pipeline "
        "built this folder, `serving.json` beside it says whether this model or the SFT one "
        "serves (the better on validation, unless configured; the `served_model` step publishes "
        "that choice) and which SFT version it started from; that SFT checkpoint's card "
        "describes the supervised training.",
        config=config.to_dict(),
        items=items,
        data={
            "preference pairs (history, chosen next item, rejected item)": report["pairs"],
            "users with a validation target": validation_users,
            "items in the catalog": items,
        },
        settings=settings.model_dump(),
        history=[
            ("SFT model, before DPO", report["valid_before"]),
            ("after DPO (this folder)", report["valid_after"]),
        ],
        validation=report["valid_after"],
        notes=notes,
        libraries=library_versions(("torch", "transformers", "accelerate", "trl")),
    )


def _resumed(report: Mapping[str, Any]) -> list[str]:
    if not report["resumed_from"]:
        return []
    return [f"Resumed from {Path(report['resumed_from']).name} after an interruption."]
