"""The SASRec family as Hugging Face causal LMs over item tokens (a whole model in one file).

Positions come from the attention mask (cumulative count of real tokens), so left- and
right-padded batches give the same outputs at real positions. Attention goes through the
transformers attention interface: PyTorch SDPA by default, flash-attn 2 where installed on CUDA,
a plain eager implementation for reference. The output layer is tied to the item embeddings and,
on a catalog of ~17k items, dominates the cost: the loss projects only labelled positions, and
inference can ask for the last position only (``logits_to_keep=1`` with left padding, or
``last_real_hidden`` for any padding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutput, ModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel

# Relative imports only: save_pretrained copies this file and the siblings it imports relatively
# into the checkpoint folder, where trust_remote_code loads them without this package.
from .configuration_sasrec import SASRecConfig
from .fused_loss import linear_cross_entropy


@dataclass
class SASRecModelOutput(BaseModelOutput):
    """Base model output; ``router_logits`` holds one (tokens, num_experts) tensor per MoE layer."""

    router_logits: tuple[torch.Tensor, ...] | None = None


@dataclass
class SASRecCausalLMOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None  # load-balancing term, already scaled by its coefficient
    expert_load: torch.Tensor | None = None  # (layers, experts): share of routed real tokens
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class SASRecRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in float32 even under bf16 autocast: the mean of squares loses too much in bf16
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... over the real tokens of each row, whatever side the padding is on."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def rotary_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    # Computed per call rather than cached in a buffer: it is tiny for ~20 positions, and a
    # buffer made in __init__ would be left empty by from_pretrained's meta-device loading.
    exponent = (
        torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim
    )
    inv_freq = 1.0 / theta**exponent
    freqs = position_ids[..., None].float() * inv_freq
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (batch, heads, seq, head_dim); cos/sin: (batch, seq, head_dim)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + _rotate_half(x) * sin


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain matmul-softmax attention: the reference the SDPA path is measured against."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class SASRecAttention(nn.Module):
    def __init__(self, config: SASRecConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        inner = self.num_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, inner, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, inner, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, inner, bias=False)
        self.o_proj = nn.Linear(inner, config.hidden_size, bias=False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq, _ = hidden_states.shape
        shape = (batch, seq, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        if rotary is not None:
            query, key = apply_rotary(query, *rotary), apply_rotary(key, *rotary)
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        output, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        return self.o_proj(output.reshape(batch, seq, -1)), weights


class SASRecMLP(nn.Module):
    """``down(silu(up(x)))``, or with ``gated=True`` Qwen3's ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, config: SASRecConfig, gated: bool) -> None:
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.gate_proj = (
            nn.Linear(config.hidden_size, config.intermediate_size, bias=False) if gated else None
        )
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_proj is None:
            return self.down_proj(F.silu(self.up_proj(x)))
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class SASRecMoE(nn.Module):
    """Top-k routed SiLU-MLP experts. No router noise and no token dropping, so evaluation is
    deterministic; the routing weights are renormalised over the chosen experts."""

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.router = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = nn.ModuleList(
            SASRecMLP(config, gated=False) for _ in range(config.num_experts)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        router_logits = self.router(tokens)
        weights, chosen = torch.topk(
            F.softmax(router_logits, dim=-1, dtype=torch.float32), self.top_k
        )
        weights = (weights / weights.sum(dim=-1, keepdim=True)).to(tokens.dtype)
        out = torch.zeros_like(tokens)
        for index, expert in enumerate(self.experts):
            rows, slot = torch.nonzero(chosen == index, as_tuple=True)
            if rows.numel():
                out.index_add_(0, rows, expert(tokens[rows]) * weights[rows, slot, None])
        return out.reshape(shape), router_logits


def expert_shares(
    router_logits: tuple[torch.Tensor, ...], top_k: int, attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per MoE layer, over the real tokens: the fraction of tokens that have each expert among
    their top ``top_k`` (layers, experts; a row sums to top_k; no gradient), and each expert's
    mean router probability (layers, experts; a row sums to 1)."""
    probs = F.softmax(torch.stack(router_logits), dim=-1, dtype=torch.float32)
    routed = torch.zeros_like(probs).scatter_(-1, probs.topk(top_k, dim=-1).indices, 1.0)
    if attention_mask is None:
        real = torch.ones(1, probs.shape[1], 1, device=probs.device)
    else:
        real = attention_mask.reshape(1, -1, 1).to(probs)
    tokens = real.sum().clamp(min=1)
    return (routed * real).sum(dim=1) / tokens, (probs * real).sum(dim=1) / tokens


def load_balancing_loss(
    router_logits: tuple[torch.Tensor, ...], top_k: int, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Switch Transformer's load-balancing loss (Fedus et al. 2021, eqs. 4-6) over the MoE layers
    pooled, as Hugging Face's MoE models compute it: ``num_experts * sum_e f_e * P_e``, with f_e
    the fraction of real tokens routed to expert e and P_e its mean router probability. Only P_e
    carries a gradient, which pushes probability away from the experts that get the most tokens;
    uniform routing gives its minimum, top_k."""
    routed, probability = expert_shares(router_logits, top_k, attention_mask)
    # every layer routes the same tokens, so the mean over layers pools them
    return router_logits[0].shape[-1] * (routed.mean(dim=0) * probability.mean(dim=0)).sum()


class SASRecBlock(nn.Module):
    def __init__(self, config: SASRecConfig, layer_idx: int) -> None:
        super().__init__()
        self.pre_norm = config.norm_position == "pre"
        self.attn_norm = SASRecRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp_norm = SASRecRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = SASRecAttention(config, layer_idx)
        if config.is_moe:
            self.mlp: nn.Module = SASRecMoE(config)
        else:
            self.mlp = SASRecMLP(config, gated=config.variant == "sasrec_gate")
        self.dropout = nn.Dropout(config.hidden_dropout)

    def _residual(
        self, x: torch.Tensor, norm: nn.Module, fn: Callable
    ) -> tuple[torch.Tensor, object]:
        out, extra = fn(norm(x) if self.pre_norm else x)
        x = x + self.dropout(out)
        return (x if self.pre_norm else norm(x)), extra

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        hidden_states, weights = self._residual(
            hidden_states,
            self.attn_norm,
            lambda h: self.self_attn(h, attention_mask, rotary, **kwargs),
        )
        if isinstance(self.mlp, SASRecMoE):
            hidden_states, router_logits = self._residual(hidden_states, self.mlp_norm, self.mlp)
        else:
            hidden_states, router_logits = self._residual(
                hidden_states, self.mlp_norm, lambda h: (self.mlp(h), None)
            )
        return hidden_states, weights, router_logits


class SASRecPreTrainedModel(PreTrainedModel):
    config: SASRecConfig
    config_class = SASRecConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules = ["SASRecBlock"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True


class SASRecModel(SASRecPreTrainedModel):
    """Item embeddings (+ learned positions for ``sasrec``) -> blocks -> final norm."""

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embed_positions = (
            None
            if config.uses_rope
            else nn.Embedding(config.max_position_embeddings, config.hidden_size)
        )
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(SASRecBlock(config, i) for i in range(config.num_hidden_layers))
        # post-norm blocks end normalised already
        self.norm = (
            SASRecRMSNorm(config.hidden_size, config.rms_norm_eps)
            if config.norm_position == "pre"
            else nn.Identity()
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs: object,
    ) -> SASRecModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        batch, seq = inputs_embeds.shape[:2]
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq, dtype=torch.long, device=inputs_embeds.device)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask)
        if seq > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence of {seq} tokens exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}"
            )
        hidden = inputs_embeds
        rotary = None
        if self.embed_positions is not None:
            hidden = hidden + self.embed_positions(position_ids)
        else:
            rotary = rotary_cos_sin(
                position_ids, self.config.head_dim, self.config.rope_theta, hidden.dtype
            )
        hidden = self.dropout(hidden)
        mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden,
            attention_mask=attention_mask,
            cache=None,
            position_ids=position_ids,
        )
        # Only the keyword arguments the attention kernels understand go down to the layers.
        kernel_kwargs = {k: v for k, v in kwargs.items() if k in ("cu_seq_lens_q", "cu_seq_lens_k")}
        all_hidden, all_attn, router_logits = [], [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden)
            hidden, weights, logits = layer(hidden, mask, rotary, **kernel_kwargs)
            if output_attentions:
                all_attn.append(weights)
            if logits is not None:
                router_logits.append(logits)
        hidden = self.norm(hidden)
        if output_hidden_states:
            all_hidden.append(hidden)
        return SASRecModelOutput(
            last_hidden_state=hidden,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attn) if output_attentions else None,
            router_logits=tuple(router_logits) if router_logits else None,
        )


def seen_tokens(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, config: SASRecConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every position p: the tokens at positions <= p, as (batch, seq, seq) indices and a
    validity mask. Padding, BOS and repeats of a token already listed are invalid, so each seen
    token counts once."""
    seq = input_ids.shape[1]
    index = input_ids.unsqueeze(1).expand(-1, seq, -1)
    causal = torch.ones(seq, seq, dtype=torch.bool, device=input_ids.device).tril()
    real = (
        attention_mask.bool()
        & (input_ids != config.bos_token_id)
        & (input_ids != config.pad_token_id)
    )
    earlier = torch.ones(seq, seq, dtype=torch.bool, device=input_ids.device).tril(-1)
    repeat = ((input_ids.unsqueeze(2) == input_ids.unsqueeze(1)) & earlier).any(dim=2)
    valid = causal.unsqueeze(0) & (real & ~repeat).unsqueeze(1)
    return index, valid


class SASRecForCausalLM(SASRecPreTrainedModel, GenerationMixin):
    """Next-item prediction over the whole vocabulary, output layer tied to the item embeddings."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    # The tied head is not saved; naming it here lets the Trainer re-tie it after loading the best
    # checkpoint instead of warning about a "missing" key.
    _keys_to_ignore_on_save = ["lm_head.weight"]

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__(config)
        self.model = SASRecModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.seen_bias = nn.Parameter(torch.zeros(1)) if config.seen_item_bias else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self and self.seen_bias is not None:
            nn.init.zeros_(self.seen_bias)

    def add_seen_bias(
        self,
        logits: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        keep: slice | torch.Tensor = slice(None),
    ) -> torch.Tensor:
        """Logits (batch, kept positions, vocab) plus the learned bias on every seen token."""
        if self.seen_bias is None:
            return logits
        index, valid = seen_tokens(input_ids, attention_mask, self.config)
        index, valid = index[:, keep], valid[:, keep]
        shift = self.seen_bias.to(logits.dtype) * valid
        # each seen token once (seen_tokens), so this adds exactly one shift per seen column
        return logits.scatter_add(2, index, shift)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        return_logits: bool = True,
        loss_dtype: torch.dtype | None = None,
        label_smoothing: float = 0.0,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs: object,
    ) -> SASRecCausalLMOutput:
        """Causal-LM forward. ``labels`` follow the Hugging Face convention (same length as the
        input, shifted inside, -100 ignored); the loss projects only the labelled positions.
        ``return_logits=False`` skips the full ``(batch, seq, vocab)`` logits when only the loss
        is wanted (training); ``loss_dtype`` is then the output layer's compute dtype (None: the
        autocast dtype, else the weights'). ``label_smoothing`` as in ``F.cross_entropy``."""
        kwargs.pop("num_items_in_batch", None)
        kwargs.pop("use_cache", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        logits = None
        if return_logits:
            keep = (
                slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
            )
            logits = self.lm_head(hidden[:, keep, :])
            if input_ids is not None:
                logits = self.add_seen_bias(logits, input_ids, attention_mask, keep)

        loss = None
        if labels is not None:
            targets = labels[:, 1:]
            labelled = targets != -100
            if not labelled.any():
                loss = hidden.sum() * 0.0  # keeps the graph; cross-entropy of nothing is NaN
            elif logits is not None and logits.shape[1] == hidden.shape[1]:
                loss = F.cross_entropy(
                    logits[:, :-1][labelled].float(),
                    targets[labelled],
                    label_smoothing=label_smoothing,
                )
            else:
                # only the labelled positions go through the ~vocab-wide output layer
                seen = None
                if self.seen_bias is not None and input_ids is not None:
                    index, valid = seen_tokens(input_ids, attention_mask, self.config)
                    seen = (index[:, :-1][labelled], valid[:, :-1][labelled], self.seen_bias)
                loss = linear_cross_entropy(
                    hidden[:, :-1][labelled],
                    self.lm_head.weight,
                    targets[labelled],
                    compute_dtype=loss_dtype,
                    seen=seen,
                    label_smoothing=label_smoothing,
                )

        aux_loss = expert_load = None
        if outputs.router_logits is not None:
            aux_loss = self.config.router_aux_loss_coef * load_balancing_loss(
                outputs.router_logits, self.config.num_experts_per_tok, attention_mask
            )
            expert_load = self.expert_load(outputs.router_logits, attention_mask)
            if loss is not None and self.training:
                loss = loss + aux_loss
        return SASRecCausalLMOutput(
            loss=loss,
            logits=logits,
            aux_loss=aux_loss,
            expert_load=expert_load,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    @torch.no_grad()
    def expert_load(
        self, router_logits: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """(layers, experts): the share of top-k assignments of real tokens each expert gets."""
        top_k = self.config.num_experts_per_tok
        return expert_shares(router_logits, top_k, attention_mask)[0] / top_k


def last_real_hidden(
    model: SASRecForCausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """(batch, hidden) state at each row's last real token, for left or right padding."""
    hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    seq = attention_mask.shape[1]
    positions = torch.arange(seq, device=attention_mask.device).expand_as(attention_mask)
    last = torch.where(attention_mask.bool(), positions, -1).max(dim=1).values
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


# save_pretrained copies this file and its relative imports into the folder and names the class
# in config.json's auto_map, so the folder loads with trust_remote_code=True where this package
# is absent. Where the package is imported, the registration below wins: transformers prefers a
# registered class to a folder's code, and then asks no question about it.
SASRecForCausalLM.register_for_auto_class("AutoModelForCausalLM")

# As in configuration_sasrec.py: only as part of this package, never from a folder's copy.
if __name__.startswith("recsys_pipeline."):
    AutoModel.register(SASRecConfig, SASRecModel, exist_ok=True)
    AutoModelForCausalLM.register(SASRecConfig, SASRecForCausalLM, exist_ok=True)

__all__ = ["SASRecForCausalLM", "SASRecModel", "SASRecPreTrainedModel", "last_real_hidden"]
