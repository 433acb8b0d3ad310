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

import numpy as np
import torch
from transformers import (
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from recsys_pipeline.histories import Histories
from recsys_pipeline.item_vocab import ItemVocab
from recsys_pipeline.metrics import TOP_K
from recsys_pipeline.models.fused_loss import fast_compute_dtype
from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
from recsys_pipeline.ranking import rank_users
from recsys_pipeline.scoring import model_scorer
from recsys_pipeline.training import distributed
from recsys_pipeline.training.config import SFTSettings
from recsys_pipeline.training.data import WindowDataset, collate, training_windows
from recsys_pipeline.training.freezing import freeze_rows
from recsys_pipeline.training.resume import latest_checkpoint

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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> SFTReport:
        return cls(**{**data, "epochs": [EpochRecord(**e) for e in data["epochs"]]})


def device_and_precision() -> tuple[str, bool]:
    """CUDA with bf16 when present, CPU float32 otherwise."""
    if torch.cuda.is_available():
        return "cuda", torch.cuda.is_bf16_supported()
    return "cpu", False


def output_layer_dtype(precision: str, device: str) -> torch.dtype | None:
    """The output layer's compute dtype for ``SFTSettings.output_precision`` (None: the
    autocast dtype under bf16 training, else float32)."""
    if precision == "auto":
        return fast_compute_dtype(device)
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


@dataclass(frozen=True)
class RankingEvalSet(torch.utils.data.Dataset):
    """Users' input histories and the held-out item each should rank high."""

    inputs: Histories
    targets: np.ndarray
    vocab: ItemVocab
    max_length: int

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.inputs[index], int(self.targets[index])

    def metrics(self, model: torch.nn.Module) -> dict[str, float]:
        model.eval()
        scorer = model_scorer(model, self.vocab, self.max_length)
        ranked = rank_users(scorer, self.inputs, self.vocab, self.targets)
        model.train()
        return ranked.metrics()


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
        outputs = model(**inputs, return_logits=False, loss_dtype=self.loss_dtype)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def get_decay_parameter_names(self, model: torch.nn.Module) -> list[str]:
        # No decay on embeddings either: decoupled weight decay would move the frozen item rows.
        embeddings = {
            f"{name}.weight"
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Embedding)
        }
        return [
            name
            for name, parameter in model.named_parameters()
            if parameter.ndim >= 2 and name not in embeddings and "lm_head" not in name
        ]

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
) -> SFTReport:
    """Train (or resume) both stages in ``work_dir``; save the best model to ``out_dir``."""
    started = time.perf_counter()
    hf_logging.disable_progress_bar()  # progress goes to `log`, one line per epoch
    if settings.init == "text" and item_vectors is None:
        raise ValueError("init='text' needs item vectors (materialize item_embeddings)")
    device, bf16 = device_and_precision()
    torch.set_num_threads(distributed.threads_per_process())
    work_dir.mkdir(parents=True, exist_ok=True)
    dataset = WindowDataset(training_windows(train, vocab, settings.max_length))
    report = SFTReport(best_metrics={}, device=device)

    validation = RankingEvalSet(valid_inputs, valid_targets, vocab, settings.max_length)

    stages = (
        [(1, settings.stage1_epochs, settings.stage1_learning_rate)]
        if (settings.init == "text" and settings.stage1_epochs > 0)
        else []
    )
    stages.append((2, settings.stage2_epochs, settings.learning_rate))

    model_dir: Path | None = None
    train_seconds, trained_windows = 0.0, 0
    for stage, epochs, learning_rate in stages:
        stage_dir = work_dir / f"stage{stage}"
        done = stage_dir / STAGE_DONE
        if done.is_file():
            log(f"stage {stage} already finished in {stage_dir}; reusing it")
            record = json.loads(done.read_text())
            report.epochs += [EpochRecord(**e) for e in record["epochs"]]
            model_dir = stage_dir / "best"
            continue
        if model_dir is None:
            torch.manual_seed(settings.seed)
            model = SASRecForCausalLM(settings.model_config(vocab))
            if settings.init == "text":
                init_item_rows(model, vocab, item_vectors, settings.init_std)
        else:
            model = SASRecForCausalLM.from_pretrained(model_dir)
        handle = (
            freeze_rows(model.get_input_embeddings().weight, torch.from_numpy(vocab.item_token_ids))
            if stage == 1
            else None
        )
        args = TrainingArguments(
            output_dir=str(stage_dir),
            num_train_epochs=epochs,
            per_device_train_batch_size=distributed.per_process_batch(settings.batch_size),
            ddp_backend=distributed.ddp_backend(device),
            learning_rate=learning_rate,
            warmup_steps=settings.warmup_ratio,
            lr_scheduler_type=settings.scheduler,
            weight_decay=settings.weight_decay,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=2,
            load_best_model_at_end=True,
            metric_for_best_model=METRIC,
            greater_is_better=True,
            logging_strategy="steps",
            logging_steps=50,
            report_to=["tensorboard"],
            seed=settings.seed,
            data_seed=settings.seed,
            bf16=bf16,
            use_cpu=device == "cpu",
            dataloader_num_workers=0,
            remove_unused_columns=False,
            disable_tqdm=True,
            save_only_model=False,
        )
        trainer = SASRecTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            eval_dataset=validation,
            data_collator=lambda batch: collate(batch, vocab.pad_token_id),
            callbacks=[EarlyStoppingCallback(settings.patience), _Progress(log, stage)],
            loss_dtype=output_layer_dtype(settings.output_precision, device),
        )
        trainer.remove_callback(PrinterCallback)
        resume = latest_checkpoint(stage_dir)
        first_step = 0
        if resume is not None:
            log(f"stage {stage}: resuming from {resume}")
            report.resumed_from = str(resume)
            first_step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
        stage_started = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        train_seconds += time.perf_counter() - stage_started - trainer.eval_seconds
        steps_per_epoch = math.ceil(len(dataset) / settings.batch_size)
        trained_windows += (
            (trainer.state.global_step - first_step) * len(dataset) // steps_per_epoch
        )
        if handle is not None:
            handle.remove()
        records = _epoch_records(trainer.state.log_history, stage)
        report.epochs += records
        trainer.save_model(str(stage_dir / "best"))  # by the main process only
        if distributed.is_main():
            done.write_text(json.dumps({"epochs": [asdict(r) for r in records]}))
        distributed.barrier()  # every process reads the stage's best model next
        model_dir = stage_dir / "best"

    assert model_dir is not None
    best = SASRecForCausalLM.from_pretrained(model_dir)
    if distributed.is_main():
        best.save_pretrained(out_dir)
    report.best_metrics = max((r.metrics for r in report.epochs), key=lambda m: m[METRIC])
    report.parameters = sum(p.numel() for p in best.parameters())
    report.wall_seconds = time.perf_counter() - started
    report.train_seconds = train_seconds
    if train_seconds > 0:
        per_window_tokens = dataset.real_tokens() / len(dataset)
        per_window_targets = dataset.targets() / len(dataset)
        report.tokens_per_s = trained_windows * per_window_tokens / train_seconds
        report.targets_per_s = trained_windows * per_window_targets / train_seconds
    for stage, _, _ in stages:  # the Trainer writes TensorBoard events under <output_dir>/runs
        runs = work_dir / f"stage{stage}" / "runs"
        if runs.is_dir() and distributed.is_main():
            shutil.copytree(runs, out_dir / "tensorboard" / f"stage{stage}", dirs_exist_ok=True)
    return report


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
    from recsys_pipeline.item_text import read_vectors
    from recsys_pipeline.item_vocab import load_vocab
    from recsys_pipeline.split import read_split

    settings = SFTSettings(**request["settings"])
    vocab = load_vocab(Path(request["tokenizer"]))
    split = read_split(Path(request["sequences"]))
    vectors = (
        read_vectors(Path(request["item_embeddings"]), vocab) if settings.init == "text" else None
    )
    return train_sft(
        split.train,
        *split.validation(),
        vocab,
        settings,
        Path(request["work_dir"]),
        Path(request["out_dir"]),
        vectors,
        log=log,
    )


if __name__ == "__main__":
    from recsys_pipeline.training.launch import cli

    cli(run_request)
