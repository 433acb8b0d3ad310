"""Which model is served: the rule that chooses between the SFT and the DPO checkpoint, the choice
dpo_checkpoint records (serving.json), and the record the served_model asset publishes
(served.json) that the index, the predictions, the evaluation, the online service and the
experiments all read. Kept free of the training code, so that the serving side's code versions do
not follow changes to training."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

ModelName = Literal["sft", "dpo"]
ServeRule = Literal["best", "sft", "dpo"]
SERVE_RULES = get_args(ServeRule)
# the asset that holds each model's checkpoints
CHECKPOINT_ASSETS: dict[str, str] = {"sft": "sft_checkpoint", "dpo": "dpo_checkpoint"}
CHOICE_FILE = "serving.json"  # in each dpo_checkpoint version
SERVED_FILE = "served.json"  # in each served_model version


def choose_served(rule: str, sft_ndcg: float, dpo_ndcg: float) -> ModelName:
    """Which model serves: ``best`` (higher validation NDCG@10, SFT on a tie), or the one named."""
    if rule in ("sft", "dpo"):
        return rule
    if rule != "best":
        raise ValueError(f"serve_model={rule!r}: use one of {SERVE_RULES}")
    return "dpo" if dpo_ndcg > sft_ndcg else "sft"


def write_choice(
    folder: Path, rule: str, valid_ndcg: dict[str, float], sft_version: str
) -> dict[str, object]:
    """serving.json: the model ``rule`` chooses, the validation NDCG@10 of each model it was
    chosen by, and the version of the SFT checkpoint it was compared with (what is served when
    SFT wins)."""
    choice = {
        "served": choose_served(rule, valid_ndcg["sft"], valid_ndcg["dpo"]),
        "rule": rule,
        "valid_ndcg@10": valid_ndcg,
        "sft_version": sft_version,
    }
    (folder / CHOICE_FILE).write_text(json.dumps(choice, indent=2))
    return choice


def read_choice(dpo_folder: Path) -> dict:
    return json.loads((dpo_folder / CHOICE_FILE).read_text())


@dataclass(frozen=True)
class ServedModel:
    """The served checkpoint, named exactly: its model, the asset holding it and its version."""

    model: ModelName
    checkpoint: str  # the asset key: sft_checkpoint or dpo_checkpoint
    version: str  # the checkpoint's version folder
    rule: str  # the serve_model rule that chose it
    valid_ndcg: dict[str, float]  # validation NDCG@10 of both models, the choice's evidence

    @classmethod
    def from_choice(cls, dpo_folder: Path) -> ServedModel:
        """What dpo_checkpoint version ``dpo_folder`` chose to serve: itself, or the SFT version
        it was compared with."""
        choice = read_choice(dpo_folder)
        model = choice["served"]
        return cls(
            model=model,
            checkpoint=CHECKPOINT_ASSETS[model],
            version=dpo_folder.name if model == "dpo" else choice["sft_version"],
            rule=choice["rule"],
            valid_ndcg=choice["valid_ndcg@10"],
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, folder: Path) -> None:
        (folder / SERVED_FILE).write_text(self.to_json())

    @classmethod
    def read(cls, folder: Path) -> ServedModel:
        return cls(**json.loads((folder / SERVED_FILE).read_text()))
