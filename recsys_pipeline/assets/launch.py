"""Starting a training stage: in the step's own process, or as torchrun processes through
Dagster Pipes (their logs and final report come back into the step)."""

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from recsys_pipeline.resources.storage import RecsysStorage


def run_training(
    context: dg.AssetExecutionContext,
    module: str,
    request: dict,
    processes: int,
    run_in_process: Callable[[dict, Callable[[str], None]], object],
) -> dict:
    """The stage's report as a dict; ``module`` runs ``request`` under torchrun when
    ``processes`` > 1 (gloo on CPU, NCCL on GPUs)."""
    from recsys_pipeline.training.launch import report_from

    if processes <= 1:
        return json.loads(run_in_process(request, context.log.info).to_json())
    path = Path(request["work_dir"]) / "request.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request))
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    command = [
        torchrun,
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        module,
        "--request",
        str(path),
    ]
    context.log.info(f"launching {' '.join(command)}")
    invocation = dg.PipesSubprocessClient().run(command=command, context=context)
    return report_from(invocation.get_custom_messages())


def train_into(
    context: dg.AssetExecutionContext,
    folder: Path,
    module: str,
    inputs: dict[str, Path],
    settings: BaseModel,
    work_dir: Path,
    processes: int,
    run_in_process: Callable[[dict, Callable[[str], None]], object],
) -> dict:
    """Trains the stage into ``folder`` and saves the input tokenizer beside the checkpoint;
    returns the report as a dict. ``inputs`` must name the ``tokenizer`` folder."""
    from transformers import AutoTokenizer

    request = {
        **{name: str(path) for name, path in inputs.items()},
        "settings": settings.model_dump(),
        "work_dir": str(work_dir),
        "out_dir": str(folder),
    }
    report = run_training(context, module, request, processes, run_in_process)
    AutoTokenizer.from_pretrained(inputs["tokenizer"]).save_pretrained(folder)
    return report


def work_dir_for(storage: RecsysStorage, key: str, settings: BaseModel, inputs: list[Path]) -> Path:
    """A resumable work folder per (settings, exact input artifact versions): a rerun with the
    same ones resumes there, any change starts afresh."""
    fingerprint = json.dumps([settings.model_dump(), [str(p) for p in inputs]], sort_keys=True)
    return storage.root / "work" / key / hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
