"""Training settings as validated pydantic models (no torch, no Dagster).

These classes are the one source of every training setting: the compute profiles in
``recsys_pipeline/settings.py`` hold one instance each, and the Dagster launchpad's config
classes are generated from them (``assets/config.py``), types, bounds and descriptions included.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from recsys_pipeline.data.vocab import ItemVocab
    from recsys_pipeline.models.configuration_sasrec import SASRecConfig

Variant = Literal["sasrec", "sasrec_rope", "sasrec_gate", "sasrec_moe"]


def _tracker_installed(report_to: str) -> str:
    # mlflow is no dependency of the project: a missing one fails the settings, before training
    if report_to == "mlflow" and importlib.util.find_spec("mlflow") is None:
        raise ValueError("report_to='mlflow' needs the mlflow package, which is not installed")
    return report_to


ReportTo = Annotated[Literal["tensorboard", "mlflow", "none"], AfterValidator(_tracker_installed)]
REPORT_TO_DESCRIPTION = (
    "the Trainer's experiment tracker: tensorboard (event files kept beside the checkpoint), "
    "mlflow (the MLFLOW_* environment; needs the mlflow package) or none"
)


class SFTSettings(BaseModel):
    """Model size and two-stage training; the defaults are the CPU profile's (measured on the
    shared data: see the ablation in docs/results.md)."""

    # frozen, and an unknown name is an error: a typo in run config must not pass silently
    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: Variant = Field("sasrec_gate", description="model variant of the SASRec family")
    hidden_size: int = Field(64, ge=1, description="width of the item embeddings and blocks")
    num_hidden_layers: int = Field(2, ge=1, description="transformer blocks")
    num_attention_heads: int = Field(2, ge=1, description="attention heads per block")
    head_dim: int | None = Field(
        None, ge=1, description="width of one head; empty: hidden_size / num_attention_heads"
    )
    intermediate_size: int = Field(256, ge=1, description="width of the feed-forward layer")
    norm_position: Literal["pre", "post"] = Field("pre", description="RMSNorm before or after")
    hidden_dropout: float = Field(
        0.4, ge=0.0, lt=1.0, description="dropout on embeddings and block outputs"
    )
    attention_dropout: float = Field(0.3, ge=0.0, lt=1.0, description="dropout on attention")
    max_history_length: int = Field(
        20,
        ge=1,
        description="the model reads at most this many of a user's most recent items (saved in "
        "the checkpoint's config, which every later step reads)",
    )
    init: Literal["text", "random"] = Field(
        "text", description="item rows from item_embeddings (text) or random"
    )
    init_std: float = Field(
        0.1, gt=0.0, description="text rows are rescaled to this per-dimension standard deviation"
    )
    stage1_epochs: int = Field(
        1, ge=0, description="epochs with the text-initialised item rows frozen (text init only)"
    )
    stage2_epochs: int = Field(10, ge=1, description="epochs in which everything trains")
    stage1_learning_rate: float = Field(5e-3, gt=0.0, description="peak learning rate, stage 1")
    learning_rate: float = Field(5e-3, gt=0.0, description="peak learning rate, stage 2")
    batch_size: int = Field(256, ge=1, description="sequences per optimizer step (all processes)")
    warmup_ratio: float = Field(0.02, ge=0.0, le=1.0, description="share of steps warming up")
    scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
    ] = Field("linear", description="learning-rate schedule (Hugging Face names)")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW decay (never on embeddings)")
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=1.0, description="share of each target spread evenly over every item"
    )
    average_checkpoints: int = Field(
        1,
        ge=1,
        description="stage 2 serves the mean weights of its best epoch and the epochs just "
        "before it, this many in all, where that mean validates better than the best epoch",
    )
    patience: int = Field(
        2, ge=1, description="epochs without a better validation NDCG@10 before stopping"
    )
    seed: int = Field(42, description="seed of initialisation, shuffling and dropout")
    seen_item_bias: bool = Field(
        True, description="learn one penalty on the logits of items already in the input"
    )
    # "auto" is bfloat16 where bf16 matmuls are fast (models/precision.py), float32 elsewhere.
    output_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="compute dtype of the output layer's matmuls and softmax in training"
    )
    report_to: ReportTo = Field("tensorboard", description=REPORT_TO_DESCRIPTION)

    @model_validator(mode="after")
    def _heads_divide(self) -> SFTSettings:
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        return self

    def sasrec_config(self, vocab: ItemVocab) -> SASRecConfig:
        from recsys_pipeline.models.configuration_sasrec import SASRecConfig

        return SASRecConfig(
            variant=self.variant,
            vocab_size=vocab.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            head_dim=self.head_dim,
            intermediate_size=self.intermediate_size,
            norm_position=self.norm_position,
            hidden_dropout=self.hidden_dropout,
            attention_dropout=self.attention_dropout,
            max_history_length=self.max_history_length,
            max_position_embeddings=self.max_history_length + 1,
            pad_token_id=vocab.pad_token_id,
            bos_token_id=vocab.bos_token_id,
            eos_token_id=vocab.eos_token_id,
            seen_item_bias=self.seen_item_bias,
        )


class DPOSettings(BaseModel):
    """DPO from the SFT model (TRL names: beta, loss_type, loss_weights). The default adds TRL's
    "sft" term (the chosen item's negative log-likelihood, as in RPO) to the sigmoid DPO loss:
    chosen on the validation targets among the settings in docs/training.md's DPO table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    beta: float = Field(0.1, gt=0.0, description="DPO temperature")
    loss_type: list[str] = Field(
        ["sigmoid", "sft"], min_length=1, description="TRL loss names, e.g. sigmoid, ipo, sft"
    )
    loss_weights: list[float] | None = Field(
        [1.0, 1.0], description="one weight per loss_type; empty: all 1"
    )
    learning_rate: float = Field(1e-4, gt=0.0, description="peak learning rate")
    epochs: float = Field(1.0, gt=0.0, description="passes over the preference pairs")
    batch_size: int = Field(256, ge=1, description="pairs per optimizer step (all processes)")
    warmup_ratio: float = Field(0.05, ge=0.0, le=1.0, description="share of steps warming up")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    save_steps: int = Field(
        100, ge=1, description="checkpoint every this many steps (a killed run resumes there)"
    )
    seed: int = Field(42, description="seed of shuffling and dropout")
    report_to: ReportTo = Field("tensorboard", description=REPORT_TO_DESCRIPTION)

    @model_validator(mode="after")
    def _one_weight_per_loss(self) -> DPOSettings:
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError("loss_weights needs one weight per loss_type")
        return self
