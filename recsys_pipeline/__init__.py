"""recsys_pipeline: a sequential recommender for video-game products, as a Dagster asset graph.

Importing the package registers the SASRec family (``model_type="sasrec"``) with transformers'
AutoConfig / AutoModel / AutoModelForCausalLM. The registration runs when transformers' auto
modules are imported (at once if they already are), so importing this package, and loading the
Dagster definitions, does not pay for importing torch and transformers.
"""

import wrapt


@wrapt.when_imported("transformers.models.auto.configuration_auto")
def _register_sasrec_config(_module: object) -> None:
    from recsys_pipeline.models import register_config

    register_config()


@wrapt.when_imported("transformers.models.auto.modeling_auto")
def _register_sasrec_models(_module: object) -> None:
    from recsys_pipeline.models import register_models

    register_models()
