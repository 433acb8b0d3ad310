"""The SASRec model family, registered with transformers' Auto classes."""

from __future__ import annotations


def register_config() -> None:
    from transformers import AutoConfig

    from recsys_pipeline.models.configuration_sasrec import SASRecConfig

    AutoConfig.register(SASRecConfig.model_type, SASRecConfig, exist_ok=True)


def register_models() -> None:
    from transformers import AutoModel, AutoModelForCausalLM

    from recsys_pipeline.models.configuration_sasrec import SASRecConfig
    from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM, SASRecModel

    register_config()
    AutoModel.register(SASRecConfig, SASRecModel, exist_ok=True)
    AutoModelForCausalLM.register(SASRecConfig, SASRecForCausalLM, exist_ok=True)
