"""Configuration of the SASRec family: one ``model_type`` ("sasrec"), four named variants.

Field names are the standard Hugging Face ones so that any checkpoint or outside script can build
a variant, e.g. ``AutoConfig.for_model("sasrec", variant="sasrec_rope", vocab_size=...)``.
"""

from __future__ import annotations

from typing import ClassVar

from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig

VARIANTS = ("sasrec", "sasrec_rope", "sasrec_gate", "sasrec_moe")


class SASRecConfig(PreTrainedConfig):
    """Decoder-only sequential recommender.

    - ``sasrec``: learned absolute positions, SiLU MLP.
    - ``sasrec_rope``: rotary positions (``rope_theta``), SiLU MLP.
    - ``sasrec_gate``: rotary positions, gated MLP ``down(silu(gate(x)) * up(x))``.
    - ``sasrec_moe``: rotary positions, ``num_experts`` SiLU-MLP experts, top-``num_experts_per_tok``
      routing and a load-balancing loss scaled by ``router_aux_loss_coef``.
    """

    model_type: ClassVar[str] = "sasrec"
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["past_key_values"]

    variant: str = "sasrec"
    vocab_size: int = 1004
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    head_dim: int | None = None  # None: hidden_size // num_attention_heads
    intermediate_size: int = 256
    max_position_embeddings: int = 64
    # How many of a user's most recent items the model reads: every step that builds model input
    # (validation, pairs, retrieval, evaluation) takes it from here. None: max_position_embeddings
    # - 1 (one position is BOS).
    max_history_length: int | None = None
    hidden_act: str = "silu"
    norm_position: str = "pre"  # "pre" (x + f(norm(x))) or "post" (norm(x + f(x)))
    rms_norm_eps: float = 1e-6
    hidden_dropout: float = 0.1  # embeddings, attention output and MLP output
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    rope_theta: float = 10000.0
    num_experts: int = 4
    num_experts_per_tok: int = 2
    router_aux_loss_coef: float = 0.01
    output_router_logits: bool = False
    # A learned scalar added to the logit of every item already in the sequence (up to the
    # current position). Purchases rarely repeat, and a plain SASRec spends ~16% of its top-10
    # slots on items the user already has; the model learns how much to push them down.
    seen_item_bias: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    tie_word_embeddings: bool = True
    use_cache: bool = False

    def __post_init__(self, **kwargs: object) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r} is not one of {VARIANTS}")
        if self.norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position={self.norm_position!r}: use 'pre' or 'post'")
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(
                    f"hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                    f"{self.num_attention_heads}; set head_dim explicitly or change one of them"
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.max_history_length is None:
            self.max_history_length = self.max_position_embeddings - 1
        if not 1 <= self.max_history_length < self.max_position_embeddings:
            raise ValueError(
                f"max_history_length={self.max_history_length} must lie in 1.."
                f"{self.max_position_embeddings - 1} (max_position_embeddings - 1: BOS comes first)"
            )
        if self.uses_rope and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {self.head_dim}")
        if self.variant == "sasrec_moe" and not 1 <= self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"num_experts_per_tok={self.num_experts_per_tok} must lie in 1..num_experts="
                f"{self.num_experts}"
            )
        if not self.is_moe:
            # Only experts have a load to balance; a non-zero coefficient would make trainers
            # (TRL) ask a dense model for router logits.
            self.router_aux_loss_coef = 0.0
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must lie in [0, 1)")
        super().__post_init__(**kwargs)

    @property
    def uses_rope(self) -> bool:
        return self.variant != "sasrec"

    @property
    def is_moe(self) -> bool:
        return self.variant == "sasrec_moe"


# save_pretrained copies this file into the folder and names the class in config.json's auto_map,
# so the folder loads with trust_remote_code=True where this package is absent (modeling_sasrec.py).
SASRecConfig.register_for_auto_class()

# Registered where the class is defined, so any import path (including the hooks in
# recsys_pipeline/__init__.py) registers it exactly once it exists. Only as part of this package:
# a folder's copy, loaded with trust_remote_code, must not claim model_type "sasrec" for the whole
# process, or every folder loaded after it would run that folder's code.
if __name__.startswith("recsys_pipeline."):
    AutoConfig.register(SASRecConfig.model_type, SASRecConfig, exist_ok=True)

__all__ = ["SASRecConfig", "VARIANTS"]
