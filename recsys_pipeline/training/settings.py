"""Training settings as plain dataclasses (no torch, no Dagster): the profiles in settings.py
hold one per compute profile, and the Dagster config classes are built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from recsys_pipeline.item_vocab import ItemVocab
    from recsys_pipeline.models.configuration_sasrec import SASRecConfig


@dataclass(frozen=True)
class SFTSettings:
    """Model size and two-stage training; the defaults are the CPU profile's (measured on the
    shared data: see the README's ablation)."""

    variant: str = "sasrec_rope"
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    head_dim: int | None = None  # None: hidden_size // num_attention_heads
    intermediate_size: int = 256
    norm_position: str = "pre"
    hidden_dropout: float = 0.4
    attention_dropout: float = 0.3
    max_length: int = 20
    init: str = "text"  # "text" (item rows from item_embeddings) or "random"
    init_std: float = 0.1  # text rows are rescaled to this per-dimension standard deviation
    stage1_epochs: int = 1  # item rows frozen (text init only)
    stage2_epochs: int = 6  # everything trains
    stage1_learning_rate: float = 5e-3
    learning_rate: float = 5e-3
    batch_size: int = 256
    warmup_ratio: float = 0.02
    scheduler: str = "linear"
    weight_decay: float = 0.01
    patience: int = 2  # epochs without a better validation NDCG@10 before stopping
    seed: int = 42
    seen_item_bias: bool = True  # the model's learned penalty on items already in the input
    # The output layer's matmuls and softmax in training: "auto" is bfloat16 on CPUs with AMX
    # (its output layer 1.4x as fast, same validation NDCG: see the README) and under CUDA bf16.
    output_precision: str = "auto"  # "auto", "float32" or "bfloat16"

    def __post_init__(self) -> None:
        if self.init not in ("text", "random"):
            raise ValueError(f"init={self.init!r}: use 'text' or 'random'")
        if self.output_precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(
                f"output_precision={self.output_precision!r}: use 'auto', 'float32' or 'bfloat16'"
            )
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        for name in ("stage2_epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def model_config(self, vocab: ItemVocab) -> SASRecConfig:
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
            max_position_embeddings=self.max_length + 1,
            pad_token_id=vocab.pad_token_id,
            bos_token_id=vocab.bos_token_id,
            eos_token_id=vocab.eos_token_id,
            seen_item_bias=self.seen_item_bias,
        )


@dataclass(frozen=True)
class DPOSettings:
    """DPO from the SFT model (TRL names: beta, loss_type, loss_weights). The default adds TRL's
    "sft" term (the chosen item's negative log-likelihood, as in RPO) to the sigmoid DPO loss:
    chosen on the validation targets among the settings in the README's DPO table."""

    beta: float = 0.1
    loss_type: tuple[str, ...] = ("sigmoid", "sft")
    loss_weights: tuple[float, ...] | None = (1.0, 1.0)
    learning_rate: float = 1e-4
    epochs: float = 1.0
    batch_size: int = 256
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    save_steps: int = 100  # checkpoint every this many steps (a killed run resumes there)
    seed: int = 42

    def __post_init__(self) -> None:
        # Run config and JSON requests give lists; the settings stay hashable tuples.
        object.__setattr__(self, "loss_type", tuple(self.loss_type))
        if self.loss_weights is not None:
            object.__setattr__(self, "loss_weights", tuple(self.loss_weights))
        if self.beta <= 0:
            raise ValueError("beta must be positive")
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError("loss_weights needs one weight per loss_type")
