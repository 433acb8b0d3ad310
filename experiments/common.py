"""Shared by the quality experiments: the pipeline's asset graph materialized in-process on the
real data (the same stages, settings and artifacts as ``make run``, with an experiment's setting
changes as run config), the figures read back from its artifacts, and the statistics of the
tables."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel

from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.enrichment.text_vectors import EmbeddingSettings
from recsys_pipeline.settings import PROFILES, SHARED_SEQUENCES, SHARED_STEAM
from recsys_pipeline.training.negatives import MiningSettings
from recsys_pipeline.training.settings import DPOSettings, SFTSettings

if TYPE_CHECKING:  # the Dagster definitions load only where an experiment runs the graph
    from recsys_pipeline.assets.in_process import Pipeline, Run

RESULTS = Path(__file__).resolve().parent / "results"
# the experiments' pipelines, each a data folder and a Dagster instance kept between runs
PIPELINES = RESULTS / "pipeline"
WORKSPACE = PIPELINES / "experiments"  # the one the references, ablation and search share
PROFILE = "cpu"  # the compute profile every experiment starts from


class ExperimentData(NamedTuple):
    """The data as the pipeline reads it (its split, vocabulary and titles), and the pipeline an
    experiment trains in."""

    split: Split
    vocab: ItemVocab
    titles: list[str]
    pipeline: Pipeline


def pipeline_data(pipeline: Pipeline) -> ExperimentData:
    """raw_csv, sequences and tokenizer materialized, and read back from their artifacts."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_titles, load_vocab

    with pipeline.run("*tokenizer") as run:
        split = read_split(run["sequences"])
        vocab, titles = load_vocab(run["tokenizer"]), load_titles(run["tokenizer"])
    return ExperimentData(split, vocab, titles, pipeline)


def shared_sequences() -> Path:
    if not SHARED_SEQUENCES.is_file():
        sys.exit(f"needs the real data at {SHARED_SEQUENCES}")
    return SHARED_SEQUENCES


def experiment_data(root: Path = WORKSPACE) -> ExperimentData:
    """The shared real data in the experiments' pipeline (with the Steam file where it is)."""
    from recsys_pipeline.assets.in_process import Pipeline

    steam = SHARED_STEAM if SHARED_STEAM.is_file() else None
    return pipeline_data(Pipeline(shared_sequences(), root, steam, PROFILE))


def real_data() -> tuple[Split, ItemVocab, list[str]]:
    """The shared real data's split, vocabulary and titles as the pipeline builds them (its
    raw_csv, sequences and tokenizer assets, materialized in a temporary folder)."""
    from recsys_pipeline.assets.in_process import Pipeline

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(shared_sequences(), Path(tmp), profile=PROFILE)
        split, vocab, titles, _ = pipeline_data(pipeline)
    return split, vocab, titles


def embedding_settings(dims: int, **changes: object) -> EmbeddingSettings:
    """The profile's item_embeddings settings for a model ``dims`` wide, with ``changes``
    validated on top (the width follows the model, so it is not one of them)."""
    if "dimensions" in changes:
        raise ValueError("the text vectors' width is the model's hidden_size: change that instead")
    return EmbeddingSettings(
        **{**PROFILES[PROFILE].embedding.model_dump(), **changes, "dimensions": dims}
    )


def pipeline_dpo_settings(**changes: object) -> DPOSettings:
    """The DPO settings a default dpo_checkpoint run uses, with ``changes`` validated on top."""
    return DPOSettings(**{**DPOSettings().model_dump(), **changes})


def cpu_settings(**changes: object) -> SFTSettings:
    return SFTSettings(**{**PROFILES[PROFILE].sft.model_dump(), **changes})


def changed_config(settings: BaseModel, defaults: BaseModel) -> dict[str, object]:
    """An asset's run config: the fields of ``settings`` that differ from the asset's defaults,
    and its seed (the one setting every run names)."""
    values, base = settings.model_dump(mode="json"), defaults.model_dump(mode="json")
    return {
        field: value for field, value in values.items() if value != base[field] or field == "seed"
    }


def materialized_run(
    pipeline: Pipeline,
    settings: SFTSettings,
    embedding: EmbeddingSettings,
    dpo: DPOSettings | None = None,
    ideas: bool = False,
    test: bool = True,
    mining: MiningSettings | None = None,
) -> dict:
    """Our model as the pipeline builds it (replacing a hand-wired SFT → pairs → DPO → choice →
    evaluation), with these settings as the assets' run config: the graph up to sft_checkpoint,
    then (given DPO settings) up to the evaluation, whose metrics.json holds the test metrics of
    the model served_model names; with ``ideas``, also those of ``served_ideas`` on it. Without
    ``test``, only the SFT model's validation: a search must not see the test targets. Without
    DPO settings, the SFT model's test metrics under the evaluation's protocol. ``mining``
    changes how dpo_pairs mines its negatives."""
    from recsys_pipeline.models.checkpoints import load_checkpoint
    from recsys_pipeline.training.sft import SFTReport

    profile = PROFILES[PROFILE]
    config = {
        "item_embeddings": changed_config(embedding, profile.embedding),
        "sft_checkpoint": changed_config(settings, profile.sft),
    }
    if dpo is not None:
        config["dpo_checkpoint"] = changed_config(dpo, DPOSettings())
    if mining is not None:
        config["dpo_pairs"] = changed_config(mining, MiningSettings())
    target = "evaluation" if test and dpo is not None else "sft_checkpoint"
    with pipeline.run(f"*{target}", config) as run:
        report = SFTReport.read(run["sft_checkpoint"])
        result = {
            "valid": report.best_metrics,
            "epochs": len(report.epochs),
            "median_epoch_seconds": report.train_seconds / max(1, len(report.epochs)),
            "input_tokens_per_s": report.tokens_per_s,
            "targets_per_s": report.targets_per_s,
            "train_seconds": report.train_seconds,
            "parameters": report.parameters,
            "averaged": report.averaged,  # the mean checkpoints' own validation, served or not
            # the artifact versions the figures come from; a reused step trained in an earlier run
            "artifact_versions": run.versions(),
            "reused": run.reused,
        }
        if not test:
            return result
        if dpo is None:
            result["sft_test"] = sft_test(run)
            result.update(test=result["sft_test"], served_valid=result["valid"])
            served = run["sft_checkpoint"]
        else:
            served = served_results(run, result)
        if ideas:
            split, vocab = run_data(run)
            result["ideas"] = served_ideas(load_checkpoint(served), split, vocab)
    return result


def run_data(run: Run) -> tuple[Split, ItemVocab]:
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab

    return read_split(run["sequences"]), load_vocab(run["tokenizer"])


def sft_test(run: Run) -> dict[str, float]:
    """The SFT model's test metrics, ranked as the evaluation asset ranks it (its protocol),
    where the run stopped before DPO."""
    from recsys_pipeline.models.checkpoints import load_checkpoint
    from recsys_pipeline.ranking.protocol import evaluate_targets
    from recsys_pipeline.ranking.scoring import model_scorer

    split, vocab = run_data(run)
    scorer = model_scorer(load_checkpoint(run["sft_checkpoint"]), vocab)
    return evaluate_targets({"sft": scorer}, split, vocab)["sft"].metrics()


def served_results(run: Run, result: dict) -> Path:
    """Adds the evaluation's figures to ``result``: the SFT model's test metrics, DPO's
    validation, test metrics, pairs and rewards, the model served_model names and its test
    metrics; returns its folder."""
    from recsys_pipeline.models.served import ServedModel
    from recsys_pipeline.ranking.protocol import METRICS_FILE
    from recsys_pipeline.training.dpo import DPOReport, reward_summary

    models = json.loads((run["evaluation"] / METRICS_FILE).read_text())["models"]
    dpo_report = DPOReport.read(run["dpo_checkpoint"])
    served = ServedModel.read(run["served_model"])
    result.update(
        sft_test=models["sft"],
        dpo_valid=dpo_report.valid_after,
        dpo_test=models["dpo"],
        dpo_pairs=dpo_report.pairs,
        dpo_rewards=reward_summary(dpo_report.history),
        served=served.model,
        # the evaluation ranks the served model as its own row where it is not the latest
        # checkpoint of its kind
        test=models["served" if "served" in models else served.model],
        served_valid=dpo_report.valid_after if served.model == "dpo" else result["valid"],
    )
    return run.version(served.checkpoint, served.version)


def served_ideas(model: object, split: Split, vocab: ItemVocab) -> dict:
    """Ideas that need no training, on a trained model: the seen items masked at scoring, and
    the blend with last-item transitions (weight chosen on the validation targets)."""
    from recsys_pipeline.ranking.blend import fit_blend
    from recsys_pipeline.ranking.protocol import evaluate_targets
    from recsys_pipeline.ranking.scoring import model_scorer

    def both(scorer: object, exclude_history: bool) -> dict:
        return {
            stage: evaluate_targets({"m": scorer}, split, vocab, exclude_history, stage)[
                "m"
            ].metrics()
            for stage in ("valid", "test")
        }

    scorer = model_scorer(model, vocab)
    blend = fit_blend(scorer, split, vocab)
    blend_test = evaluate_targets({"m": blend.scorer}, split, vocab)["m"].metrics()
    return {
        "seen masked": both(scorer, exclude_history=True),
        # the grid already ranked the validation targets with every weight
        "transition blend": {
            "weight": blend.weight,
            "grid": blend.grid,
            "valid": blend.grid[blend.weight],
            "test": blend_test,
        },
    }


def ensure_venv(folder: Path, pins: list[str]) -> Path:
    """A reference library's own virtual environment: torch 2.13.0 first (the CPU wheel on
    disk; any other version would download a CUDA build), then the library's pins."""
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, *pins], check=True)
    return python


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def spread(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.4f} ± {std:.4f}" if len(values) > 1 else f"{mean:.4f}"


def is_tie(a: list[float], b: list[float]) -> bool:
    """A difference of means smaller than two standard errors of that difference."""
    error = math.sqrt(sum(mean_std(v)[1] ** 2 / len(v) for v in (a, b)))
    return abs(statistics.mean(a) - statistics.mean(b)) < 2 * error


def paired_gains(values: list[float], base: list[float]) -> str:
    """Each seed's difference from the same seed of ``base``, then the verdict on the means."""
    gains = ", ".join(f"{v - b:+.4f}" for v, b in zip(values, base, strict=True))
    if len(values) < 2:
        return f"{gains} (one seed: spread unknown)"
    return f"{gains} ({'tie' if is_tie(values, base) else 'differs'})"


__all__ = [
    "PIPELINES",
    "WORKSPACE",
    "ExperimentData",
    "changed_config",
    "cpu_settings",
    "embedding_settings",
    "ensure_venv",
    "experiment_data",
    "is_tie",
    "materialized_run",
    "mean_std",
    "paired_gains",
    "pipeline_data",
    "pipeline_dpo_settings",
    "real_data",
    "served_ideas",
    "spread",
    "statistics",
]
