"""Loading a saved model folder, with clear errors for the ways it can be broken."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    pass


def check_checkpoint(folder: Path) -> None:
    """Raise CheckpointError unless ``folder`` holds a readable config and safetensors weights."""
    from safetensors import safe_open

    folder = Path(folder)
    config = folder / "config.json"
    weights = folder / WEIGHTS_FILE
    if not config.is_file():
        raise CheckpointError(f"{folder}: no config.json; not a saved model folder")
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{config}: unreadable ({exc})") from exc
    if not weights.is_file():
        raise CheckpointError(f"{folder}: {WEIGHTS_FILE} is missing (only safetensors are loaded)")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                handle.get_slice(name)
    except Exception as exc:  # safetensors raises its own error types for each kind of damage
        raise CheckpointError(f"{weights}: corrupt or truncated safetensors file ({exc})") from exc


def load_checkpoint(folder: Path):  # noqa: ANN201 - a SASRecForCausalLM, imported lazily
    """The model in ``folder`` (any registered causal LM), in eval mode, from safetensors only."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    check_checkpoint(folder)
    # A progress bar per load would fill the step logs and the service's output. transformers
    # has one process-wide switch for it, so it is set for this load only and put back as it was.
    with _LOADING:
        previous = hf_logging.set_tqdm_hook(_without_bar)
        try:
            # this package's __init__ has registered the model family with the Auto classes;
            # trust_remote_code=False: the code a folder carries (auto_map) never runs here
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), use_safetensors=True, trust_remote_code=False
            )
        finally:
            hf_logging.set_tqdm_hook(previous)
    return model.eval()


# Held while the hook is swapped, so loads in two threads cannot put back each other's hook.
_LOADING = threading.Lock()


def _without_bar(factory: Callable, args: tuple, kwargs: dict) -> object:
    return factory(*args, **{**kwargs, "disable": True})
