"""Two-stage supervised training of a SASRec model with the Hugging Face Trainer.

Stage 1 trains everything except the text-initialised item rows of the (tied) embedding matrix;
stage 2 trains everything. Each stage evaluates HR/NDCG/MRR@10 on the validation targets after
every epoch (full ranking), keeps the best epoch by NDCG@10 and stops early. Each stage writes
Trainer checkpoints into a work folder, so a run that was killed resumes from its last epoch.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
from recsys_pipeline.models.precision import bf16_is_fast, default_device, trainer_bf16
from recsys_pipeline.ranking.metrics import TOP_K
from recsys_pipeline.training import distributed
from recsys_pipeline.training.averaging import averaged_model, window_up_to
from recsys_pipeline.training.freezing import decay_parameter_names, freeze_rows
from recsys_pipeline.training.model_card import sft_card, write_model_card
from recsys_pipeline.training.progress import StepProgress
from recsys_pipeline.training.resume import latest_checkpoint
from recsys_pipeline.training.settings import SFTSettings
from recsys_pipeline.training.tracking import tracker_run
from recsys_pipeline.training.validation import RankingEvalSet
from recsys_pipeline.training.windows import WindowDataset, collate, training_windows

REPORT_FILE = "training_report.json"  # in each sft_checkpoint version
STAGE_DONE = "stage_done.json"
METRIC = f"ndcg@{TOP_K}"


@dataclass
class EpochRecord:
    stage: int
    epoch: int
    train_loss: float
    metrics: dict[str, float]


@dataclass
class SFTReport:
    best_metrics: dict[str, float]
    epochs: list[EpochRecord] = field(default_factory=list)
    parameters: int = 0
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    tokens_per_s: float = 0.0  # real input tokens (BOS included) per second of training
    targets_per_s: float = 0.0  # next-item targets per second of training
    resumed_from: str | None = None
    device: str = "cpu"
    # stage 2's averaged checkpoints: their names, validation metrics, and whether it is served
    averaged: dict | None = None
    # per stage ("stage1", "stage2"), the run report_to's tracker recorded (MLflow: run_id and
    # tracking_uri); TensorBoard's event files are kept in the model folder instead
    tracker_runs: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> SFTReport:
        return cls(**{**data, "epochs": [EpochRecord(**e) for e in data["epochs"]]})

    def write(self, folder: Path) -> None:
        (folder / REPORT_FILE).write_text(self.to_json())

    @classmethod
    def read(cls, folder: Path) -> SFTReport:
        return cls.from_dict(json.loads((folder / REPORT_FILE).read_text()))


def output_layer_dtype(precision: str, device: str) -> torch.dtype | None:
    """The output layer's compute dtype for ``SFTSettings.output_precision`` ("auto": bfloat16
    where it is fast; otherwise None, the autocast dtype under bf16 training, else float32)."""
    if precision == "auto":
        return torch.bfloat16 if bf16_is_fast(device) else None
    return getattr(torch, precision)


def init_item_rows(
    model: SASRecForCausalLM, vocab: ItemVocab, vectors: np.ndarray, std: float
) -> None:
    """Write text vectors (rescaled to ``std`` per dimension) into the item rows."""
    if vectors.shape != (vocab.n_items, model.config.hidden_size):
        raise ValueError(
            f"item vectors have shape {vectors.shape}; the model needs "
            f"({vocab.n_items}, {model.config.hidden_size})"
        )
    scaled = vectors / (vectors.std() + 1e-12) * std
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[torch.from_numpy(vocab.item_token_ids)] = torch.from_numpy(scaled).to(weight)


class SASRecTrainer(Trainer):
    """HF Trainer with the recommender's loss path and full-ranking validation
    (``eval_dataset`` is a :class:`RankingEvalSet`)."""

    def __init__(
        self, *args: object, loss_dtype: torch.dtype | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)
        self.eval_seconds = 0.0
        self.loss_dtype = loss_dtype

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, object]:
        # return_logits=False: the loss is computed by the fused chunked output layer, and the
        # (batch, seq, vocab) logits are never built.
        # the smoothing is HF's setting, applied in the fused loss (HF's own label smoother
        # would need the logits)
        outputs = model(
            **inputs,
            return_logits=False,
            loss_dtype=self.loss_dtype,
            label_smoothing=self.args.label_smoothing_factor,
        )
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def get_decay_parameter_names(self, model: torch.nn.Module) -> list[str]:
        # No decay on embeddings either: decoupled weight decay would move the frozen item rows.
        return decay_parameter_names(model)

    def evaluate(
        self,
        eval_dataset: object = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        started = time.perf_counter()
        eval_set = eval_dataset if eval_dataset is not None else self.eval_dataset
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in eval_set.metrics(self.model).items()}
        self.eval_seconds += time.perf_counter() - started
        metrics["epoch"] = self.state.epoch
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics


class _Progress(TrainerCallback):
    def __init__(self, log: Callable[[str], None], stage: int) -> None:
        self.log, self.stage = log, stage

    def on_evaluate(
        self, args: object, state: object, control: object, metrics: dict, **kwargs: object
    ) -> None:
        shown = ", ".join(
            f"{k.removeprefix('eval_')} {v:.4f}" for k, v in metrics.items() if k != "epoch"
        )
        self.log(f"stage {self.stage}, epoch {metrics.get('epoch', 0):.0f}: {shown}")


class Stage(NamedTuple):
    number: int  # 1: item rows frozen, 2: everything trains
    epochs: int
    learning_rate: float


def plan_stages(settings: SFTSettings, rows_from_text: bool = True) -> list[Stage]:
    """Stage 1 only when item rows come from text: random rows, or neighbour means of rows that
    are themselves random (an input without titles), have nothing to keep, and an epoch with
    them frozen teaches nothing."""
    stages = []
    if settings.init == "text" and rows_from_text and settings.stage1_epochs > 0:
        stages.append(Stage(1, settings.stage1_epochs, settings.stage1_learning_rate))
    return [*stages, Stage(2, settings.stage2_epochs, settings.learning_rate)]


def first_model(
    settings: SFTSettings, vocab: ItemVocab, item_vectors: np.ndarray | None
) -> SASRecForCausalLM:
    torch.manual_seed(settings.seed)
    model = SASRecForCausalLM(settings.sasrec_config(vocab))
    if settings.init == "text":
        init_item_rows(model, vocab, item_vectors, settings.init_std)
    return model


def training_arguments(
    settings: SFTSettings, stage: Stage, stage_dir: Path, device: str
) -> TrainingArguments:
    """One epoch per evaluation and checkpoint; the best epoch by validation NDCG@10 is kept."""
    return TrainingArguments(
        output_dir=str(stage_dir),
        num_train_epochs=stage.epochs,
        per_device_train_batch_size=distributed.per_process_batch(settings.batch_size),
        ddp_backend=distributed.ddp_backend(device),
        learning_rate=stage.learning_rate,
        warmup_steps=settings.warmup_ratio,
        lr_scheduler_type=settings.scheduler,
        weight_decay=settings.weight_decay,
        label_smoothing_factor=settings.label_smoothing,
        eval_strategy="epoch",
        save_strategy="epoch",
        # the best checkpoint, the ones before it that are averaged, the ones after it up to the
        # early stop
        save_total_limit=max(2, settings.average_checkpoints + settings.patience),
        load_best_model_at_end=True,
        metric_for_best_model=METRIC,
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=50,
        report_to=settings.report_to,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=trainer_bf16(device),
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
        save_only_model=False,
    )


@dataclass
class StageRun:
    records: list[EpochRecord]
    train_seconds: float  # evaluation excluded
    trained_windows: int  # examples seen in this run (a resumed run counts what it trained)
    resumed_from: Path | None
    averaged: dict | None
    tracker_run: dict[str, str]


def run_stage(
    stage: Stage,
    model: SASRecForCausalLM,
    dataset: WindowDataset,
    validation: RankingEvalSet,
    settings: SFTSettings,
    stage_dir: Path,
    device: str,
    log: Callable[[str], None],
) -> StageRun:
    """Train one stage (resuming from its newest complete checkpoint) and save its best model
    to ``stage_dir/best``."""
    vocab = validation.vocab
    frozen = (
        freeze_rows(model.get_input_embeddings().weight, torch.from_numpy(vocab.item_token_ids))
        if stage.number == 1
        else None
    )
    trainer = SASRecTrainer(
        model=model,
        args=training_arguments(settings, stage, stage_dir, device),
        train_dataset=dataset,
        eval_dataset=validation,
        data_collator=lambda batch: collate(batch, vocab.pad_token_id),
        callbacks=[
            EarlyStoppingCallback(settings.patience),
            _Progress(log, stage.number),
            StepProgress(log, f"SFT stage {stage.number}"),
        ],
        loss_dtype=output_layer_dtype(settings.output_precision, device),
    )
    trainer.remove_callback(PrinterCallback)
    resume = latest_checkpoint(stage_dir)
    first_step = 0
    if resume is not None:
        log(f"stage {stage.number}: resuming from {resume}")
        first_step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started - trainer.eval_seconds
    tracked = tracker_run(settings.report_to)
    steps_per_epoch = math.ceil(len(dataset) / settings.batch_size)
    windows = (trainer.state.global_step - first_step) * len(dataset) // steps_per_epoch
    if frozen is not None:
        frozen.remove()
    records = _epoch_records(trainer.state.log_history, stage.number)
    averaged = None
    if stage.number == 2 and settings.average_checkpoints > 1:
        averaged = average_if_better(trainer, validation, stage_dir, settings.average_checkpoints)
        log(f"stage 2, mean of {', '.join(averaged['checkpoints'])}: {averaged}")
    trainer.save_model(str(stage_dir / "best"))  # by the main process only
    if distributed.is_main():
        done = {"epochs": [asdict(r) for r in records], "averaged": averaged, "tracked": tracked}
        (stage_dir / STAGE_DONE).write_text(json.dumps(done))
    distributed.barrier()  # every process reads the stage's best model next
    return StageRun(records, seconds, windows, resume, averaged, tracked)


def average_if_better(
    trainer: Trainer, validation: RankingEvalSet, stage_dir: Path, count: int
) -> dict:
    """Average the best checkpoint with the ``count - 1`` before it; the trainer's model takes
    the mean weights where they validate better than the best epoch did."""
    best = Path(trainer.state.best_model_checkpoint)
    window = window_up_to(stage_dir, best, count)
    mean = averaged_model(window)
    metrics = validation.metrics(mean)
    kept = metrics[METRIC] > trainer.state.best_metric
    if kept:
        trainer.model.load_state_dict(mean.state_dict())
    return {"checkpoints": [p.name for p in window], "metrics": metrics, "kept": kept}


def train_sft(
    train: Histories,
    valid_inputs: Histories,
    valid_targets: np.ndarray,
    vocab: ItemVocab,
    settings: SFTSettings,
    work_dir: Path,
    out_dir: Path,
    item_vectors: np.ndarray | None = None,
    log: Callable[[str], None] = print,
    rows_from_text: bool = True,
) -> SFTReport:
    """Train (or resume) both stages in ``work_dir``; save the best model to ``out_dir``.
    ``rows_from_text``: whether any of ``item_vectors``' rows was encoded from an item's text
    (without any, the frozen stage 1 is skipped)."""
    started = time.perf_counter()
    if settings.init == "text" and item_vectors is None:
        raise ValueError("init='text' needs item vectors (materialize item_embeddings)")
    device = default_device()
    torch.set_num_threads(distributed.threads_per_process())
    work_dir.mkdir(parents=True, exist_ok=True)
    dataset = WindowDataset(training_windows(train, vocab, settings.max_history_length))
    validation = RankingEvalSet(valid_inputs, valid_targets, vocab)
    report = SFTReport(best_metrics={}, device=device)
    stages = plan_stages(settings, rows_from_text)
    if settings.init == "text" and not rows_from_text and settings.stage1_epochs > 0:
        log(
            "no item row was encoded from text (no titles?): stage 1, which trains with them "
            "frozen, is skipped"
        )
    model_dir: Path | None = None
    train_seconds, trained_windows = 0.0, 0
    for stage in stages:
        stage_dir = work_dir / f"stage{stage.number}"
        done = stage_dir / STAGE_DONE
        if done.is_file():
            log(f"stage {stage.number} already finished in {stage_dir}; reusing it")
            finished = json.loads(done.read_text())
            report.epochs += [EpochRecord(**e) for e in finished["epochs"]]
            report.averaged = finished.get("averaged")  # stage 2, the last, sets it
            tracked = finished.get("tracked", {})
        else:
            model = (
                first_model(settings, vocab, item_vectors)
                if model_dir is None
                else SASRecForCausalLM.from_pretrained(model_dir)
            )
            run = run_stage(stage, model, dataset, validation, settings, stage_dir, device, log)
            report.epochs += run.records
            train_seconds += run.train_seconds
            trained_windows += run.trained_windows
            if run.resumed_from is not None:
                report.resumed_from = str(run.resumed_from)
            report.averaged = run.averaged
            tracked = run.tracker_run
        if tracked:
            report.tracker_runs[f"stage{stage.number}"] = tracked
        model_dir = stage_dir / "best"

    best = SASRecForCausalLM.from_pretrained(model_dir)
    if distributed.is_main():
        best.save_pretrained(out_dir)
        _copy_tensorboard(work_dir, stages, out_dir)
    report.best_metrics = max((r.metrics for r in report.epochs), key=lambda m: m[METRIC])
    if report.averaged is not None and report.averaged["kept"]:
        report.best_metrics = report.averaged["metrics"]
    report.parameters = sum(p.numel() for p in best.parameters())
    report.wall_seconds = time.perf_counter() - started
    report.train_seconds = train_seconds
    if train_seconds > 0:
        report.tokens_per_s = trained_windows * dataset.real_tokens() / len(dataset) / train_seconds
        report.targets_per_s = trained_windows * dataset.targets() / len(dataset) / train_seconds
    if distributed.is_main():  # the card states the report's final figures, so it comes last
        card = sft_card(
            asdict(report),
            settings,
            best.config,
            users=len(train),
            validation_users=len(valid_targets),
            items=vocab.n_items,
            windows=len(dataset),
            targets=dataset.targets(),
        )
        write_model_card(out_dir, card)
    return report


def _copy_tensorboard(work_dir: Path, stages: list[Stage], out_dir: Path) -> None:
    """The Trainer writes TensorBoard events under <output_dir>/runs; keep them with the model."""
    for stage in stages:
        runs = work_dir / f"stage{stage.number}" / "runs"
        if runs.is_dir():
            shutil.copytree(
                runs, out_dir / "tensorboard" / f"stage{stage.number}", dirs_exist_ok=True
            )


def _epoch_records(log_history: list[dict], stage: int) -> list[EpochRecord]:
    records, losses = [], []
    for entry in log_history:
        if "loss" in entry:
            losses.append(entry["loss"])
        if f"eval_{METRIC}" in entry:
            metrics = {
                k.removeprefix("eval_"): v for k, v in entry.items() if k.startswith("eval_")
            }
            loss = float(np.mean(losses)) if losses else float("nan")
            records.append(EpochRecord(stage, round(entry["epoch"]), loss, metrics))
            losses = []
    return records


def run_request(request: dict, log: Callable[[str], None] = print) -> SFTReport:
    """Train from artifact folders named in ``request`` (see assets/training.py)."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.enrichment.text_vectors import read_vectors, text_rows

    settings = SFTSettings(**request["settings"])
    vocab = load_vocab(Path(request["tokenizer"]))
    split = read_split(Path(request["sequences"]))
    vectors, from_text = None, False
    if settings.init == "text":
        vectors = read_vectors(Path(request["item_embeddings"]), vocab)
        from_text = text_rows(Path(request["item_embeddings"])) > 0
    return train_sft(
        split.train,
        *split.validation(),
        vocab,
        settings,
        Path(request["work_dir"]),
        Path(request["out_dir"]),
        vectors,
        log=log,
        rows_from_text=from_text,
    )


if __name__ == "__main__":
    from recsys_pipeline.training.launch import cli

    cli(run_request)
