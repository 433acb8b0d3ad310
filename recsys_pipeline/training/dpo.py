"""Direct preference optimisation of a trained SASRec model with TRL's DPOTrainer.

The pairs arrive as item token ids in the SFT input shape ([BOS, most recent items] as the
prompt, one item as each completion), so the trainer skips TRL's text tokenisation, which would
also append an EOS token the recommender never predicts. The reference model is a frozen copy
of the SFT model. Checkpoints go to a work folder, so a killed run resumes.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from recsys_pipeline.data.vocab import ItemVocab, build_tokenizer
from recsys_pipeline.models.precision import default_device, trainer_bf16
from recsys_pipeline.training import distributed
from recsys_pipeline.training.model_card import dpo_card, write_model_card
from recsys_pipeline.training.pairs import PreferencePairs
from recsys_pipeline.training.progress import StepProgress
from recsys_pipeline.training.resume import latest_checkpoint
from recsys_pipeline.training.settings import DPOSettings
from recsys_pipeline.training.tracking import tracker_run
from recsys_pipeline.training.validation import RankingEvalSet

REPORT_FILE = "dpo_report.json"  # in each dpo_checkpoint version


@dataclass
class DPOReport:
    valid_before: dict[str, float]
    valid_after: dict[str, float]
    pairs: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    resumed_from: str | None = None
    history: list[dict] = field(default_factory=list)  # TRL's logged rewards/margins/accuracies
    # the run report_to's tracker recorded (MLflow: run_id and tracking_uri), under "dpo"
    tracker_runs: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> DPOReport:
        return cls(**data)

    def write(self, folder: Path) -> None:
        (folder / REPORT_FILE).write_text(self.to_json())

    @classmethod
    def read(cls, folder: Path) -> DPOReport:
        return cls(**json.loads((folder / REPORT_FILE).read_text()))


def pairs_dataset(pairs: PreferencePairs, vocab: ItemVocab) -> object:
    """TRL's tokenized form: prompt_ids / chosen_ids / rejected_ids."""
    from datasets import Dataset

    prompts = [
        [vocab.bos_token_id, *vocab.encode(pairs.prompts[r]).tolist()] for r in range(len(pairs))
    ]
    return Dataset.from_dict(
        {
            "prompt_ids": prompts,
            "chosen_ids": [[int(t)] for t in vocab.encode(pairs.chosen)],
            "rejected_ids": [[int(t)] for t in vocab.encode(pairs.rejected)],
        }
    )


def build_trainer(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    pairs: PreferencePairs,
    vocab: ItemVocab,
    settings: DPOSettings,
    work_dir: Path,
) -> object:
    """TRL's DPOTrainer over item-id pairs; ``reference`` stays frozen."""
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer
    from trl.trainer import utils as trl_utils

    # Both overrides reach into TRL's private code, which offers no public way to do either;
    # test_contracts.py pins what they rely on and fails, naming TRL's version, when it changes.
    class ItemDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset: object, *args: object, **kwargs: object) -> object:
            # already token ids in the SFT input shape; TRL's own preparation takes text only
            # (token ids fail in it) and appends EOS to each completion
            return dataset

        def compute_loss(self, *args: object, **kwargs: object) -> object:
            # Off Triton devices TRL's fused head scores every position of every sequence (fixed
            # tile shapes for compilers). Nothing is compiled here and each completion is one
            # item, so score the labelled positions only: measured 6.1 -> 0.5 s a step on CPU,
            # and again on TRL 1.16.0 (16,859 items, 256 pairs, forward and backward): 14 -> 0.5 s.
            with mock.patch.object(trl_utils, "_use_triton", lambda device: True):
                return super().compute_loss(*args, **kwargs)

    device = default_device()
    args = DPOConfig(
        output_dir=str(work_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=distributed.per_process_batch(settings.batch_size),
        ddp_backend=distributed.ddp_backend(device),
        learning_rate=settings.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        beta=settings.beta,
        loss_type=list(settings.loss_type),
        loss_weights=list(settings.loss_weights) if settings.loss_weights else None,
        max_length=None,
        activation_checkpointing=False,
        bf16=trainer_bf16(device),
        use_cpu=device == "cpu",
        report_to=settings.report_to,
        logging_steps=20,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=1,
        seed=settings.seed,
        data_seed=settings.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = ItemDPOTrainer(
        model=model,
        ref_model=reference.eval().requires_grad_(False),
        args=args,
        train_dataset=pairs_dataset(pairs, vocab),
        processing_class=build_tokenizer(vocab),
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def train_dpo(
    sft_dir: Path,
    pairs: PreferencePairs,
    vocab: ItemVocab,
    validation: RankingEvalSet,
    settings: DPOSettings,
    work_dir: Path,
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> DPOReport:
    """DPO from the SFT model in ``sft_dir`` (also the frozen reference); resumes from the last
    checkpoint in ``work_dir``; saves the tuned model to ``out_dir``."""
    from recsys_pipeline.models.checkpoints import load_checkpoint

    torch.set_num_threads(distributed.threads_per_process())
    model = load_checkpoint(sft_dir)
    report = DPOReport(valid_before=validation.metrics(model), valid_after={}, pairs=len(pairs))
    log(f"validation before DPO: {_fmt(report.valid_before)}")
    trainer = build_trainer(model, copy.deepcopy(model), pairs, vocab, settings, work_dir)
    trainer.add_callback(StepProgress(log, "DPO"))
    resume = latest_checkpoint(work_dir)
    if resume is not None:
        log(f"resuming DPO from {resume}")
        report.resumed_from = str(resume)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    report.train_seconds = time.perf_counter() - started
    if tracked := tracker_run(settings.report_to):
        report.tracker_runs["dpo"] = tracked
    report.steps = trainer.state.global_step
    report.history = [h for h in trainer.state.log_history if "rewards/margins" in h or "loss" in h]
    model.eval()
    report.valid_after = validation.metrics(model)
    log(f"validation after DPO: {_fmt(report.valid_after)}")
    if distributed.is_main():
        model.save_pretrained(out_dir)
        card = dpo_card(
            asdict(report),
            settings,
            model.config,
            validation_users=len(validation),
            items=vocab.n_items,
        )
        write_model_card(out_dir, card)
        runs = work_dir / "runs"
        if runs.is_dir():
            shutil.copytree(runs, out_dir / "tensorboard", dirs_exist_ok=True)
    return report


def run_request(request: dict, log: Callable[[str], None] = print) -> DPOReport:
    """DPO from artifact folders named in ``request`` (see assets/preference.py)."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.training.pairs import read_pairs

    vocab = load_vocab(Path(request["tokenizer"]))
    split = read_split(Path(request["sequences"]))
    validation = RankingEvalSet(*split.validation(), vocab)
    settings = DPOSettings(**request["settings"])
    return train_dpo(
        Path(request["sft_checkpoint"]),
        read_pairs(Path(request["dpo_pairs"]), vocab),
        vocab,
        validation,
        settings,
        Path(request["work_dir"]),
        Path(request["out_dir"]),
        log=log,
    )


def reward_summary(history: list[dict]) -> dict[str, float]:
    """Mean of the last logged reward margin and accuracy (TRL's names)."""
    last = [h for h in history if "rewards/margins" in h][-3:]
    if not last:
        return {}
    return {
        "rewards/margins": float(np.mean([h["rewards/margins"] for h in last])),
        "rewards/accuracies": float(np.mean([h["rewards/accuracies"] for h in last])),
    }


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())


if __name__ == "__main__":
    from recsys_pipeline.training.launch import cli

    cli(run_request)
