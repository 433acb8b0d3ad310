"""Benchmark: an Optuna search over the CPU profile's SFT settings, judged on the validation
targets only (the test targets are never scored here).

Each trial materializes the pipeline up to sft_checkpoint (the experiments' pipeline, common.py:
the data, enrichment and item vectors are reused from the run before) with a short training (one
frozen epoch, then SHORT_EPOCHS) and one seed as its run config; its value is the best epoch's
validation NDCG@10 from the checkpoint's training report. Optuna's TPE sampler picks the next
trial from the ones before. The trials go to a journal file (experiments/results/search.journal,
committed: appended line by line, so a search stopped mid-way, or in an earlier session,
continues where it was). The best trial is printed as the ``ours+FIELD=VALUE+...`` run that
``experiments/references.py`` retrains at full length, three seeds, against the served model.

    .venv/bin/python -m experiments.search [--trials N] [--minutes M] [--threads N]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import optuna

from experiments.common import (
    ExperimentData,
    cpu_settings,
    embedding_settings,
    experiment_data,
    materialized_run,
)

JOURNAL = Path(__file__).resolve().parent / "results" / "search.journal"
STUDY = "sft-cpu-profile"
SHORT_EPOCHS = 3  # stage-2 epochs a trial trains (the CPU profile trains 10)


def suggest(trial: optuna.Trial) -> dict[str, object]:
    """The settings one trial changes; the rest stay the CPU profile's."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 2e-2, log=True),
        "hidden_dropout": trial.suggest_float("hidden_dropout", 0.1, 0.6),
        "attention_dropout": trial.suggest_float("attention_dropout", 0.0, 0.5),
        "weight_decay": trial.suggest_float("weight_decay", 1e-3, 0.3, log=True),
        "init_std": trial.suggest_float("init_std", 0.02, 0.5, log=True),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.3),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
        "num_hidden_layers": trial.suggest_int("num_hidden_layers", 1, 3),
    }


def objective(data: ExperimentData, short: dict[str, object]) -> Callable[[optuna.Trial], float]:
    def value(trial: optuna.Trial) -> float:
        settings = cpu_settings(**short, **suggest(trial), seed=1)
        embedding = embedding_settings(settings.hidden_size)
        run = materialized_run(data.pipeline, settings, embedding, test=False)
        trial.set_user_attr("minutes", run["train_seconds"] / 60)
        return run["valid"]["ndcg@10"]

    return value


def run_name(params: dict[str, object]) -> str:
    """The references.py run that retrains these settings at full length."""
    return "+".join(["ours", *(f"{field}={value:.3g}" for field, value in params.items())])


def search(
    data: ExperimentData,
    trials: int,
    minutes: float | None,
    journal: Path = JOURNAL,
    short: dict[str, object] | None = None,
) -> optuna.Study:
    """Run ``trials`` more trials (or until ``minutes`` pass) of the study in ``journal``."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=STUDY,
        storage=journal_storage(journal),
        direction="maximize",
        load_if_exists=True,
    )
    # seeded by the trials so far: a resumed search must not redraw the first session's trials
    study.sampler = optuna.samplers.TPESampler(seed=len(study.trials))
    if not study.trials:  # the CPU profile's own settings are the first trial
        defaults = cpu_settings().model_dump()
        names = suggest(optuna.trial.FixedTrial(defaults)).keys()
        study.enqueue_trial({name: defaults[name] for name in names})
    short = {"stage1_epochs": 1, "stage2_epochs": SHORT_EPOCHS} if short is None else short
    timeout = None if minutes is None else minutes * 60
    study.optimize(objective(data, short), n_trials=trials, timeout=timeout)
    return study


def journal_storage(journal: Path) -> optuna.storages.JournalStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))


def report(study: optuna.Study, top: int = 8) -> list[str]:
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    done.sort(key=lambda t: -t.value)
    lines = [
        f"{len(done)} trials done; the best {min(top, len(done))} by validation NDCG@10:",
        "| trial | valid NDCG@10 | minutes | settings |",
        "|---|---|---|---|",
    ]
    for t in done[:top]:
        settings = ", ".join(f"{k}={v:.3g}" for k, v in t.params.items())
        lines.append(f"| {t.number} | {t.value:.4f} | {t.user_attrs['minutes']:.1f} | {settings} |")
    if done:
        lines.append(
            "\nretrain the best in full: python -m experiments.references --runs "
            + run_name(done[0].params)
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--minutes", type=float, help="stop starting trials after this long")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--report-only", action="store_true", help="print the journal's trials")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.report_only:
        study = optuna.load_study(study_name=STUDY, storage=journal_storage(JOURNAL))
    else:
        study = search(experiment_data(), args.trials, args.minutes)
    print("\n".join(report(study)))


if __name__ == "__main__":
    main()
