"""recsys_pipeline: a sequential recommender for video-game products, as a Dagster asset graph.

Importing the package registers the SASRec family (``model_type="sasrec"``) with transformers'
AutoConfig / AutoModel / AutoModelForCausalLM. The registration runs when transformers' auto
modules are imported (at once if they already are), so importing this package, and loading the
Dagster definitions, does not pay for importing torch and transformers.
"""

import importlib

import wrapt


@wrapt.when_imported("transformers.models.auto.configuration_auto")
def _register_sasrec_config(_module: object) -> None:
    # import_module, not `from ... import`: it tolerates a module that is still being imported
    # (it registers itself when it finishes).
    importlib.import_module("recsys_pipeline.models.configuration_sasrec")


@wrapt.when_imported("transformers.models.auto.modeling_auto")
def _register_sasrec_models(_module: object) -> None:
    importlib.import_module("recsys_pipeline.models.modeling_sasrec")
