from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import Trainer

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.models.checkpoints import CheckpointError, check_checkpoint, load_checkpoint
from recsys_pipeline.models.inputs import left_padded_inputs
from recsys_pipeline.training.settings import SFTSettings
from recsys_pipeline.training.sft import init_item_rows, train_sft
from recsys_pipeline.training.windows import IGNORE, WindowDataset, training_windows
from recsys_pipeline_tests.conftest import tiny_rows
from recsys_pipeline_tests.test_models import expected_parameters

VOCAB = ItemVocab(item_ids=np.arange(1, 41))
TINY = dict(hidden_size=16, num_attention_heads=2, intermediate_size=32, batch_size=16)


def tiny_split() -> Split:
    import json as js

    rows = tiny_rows()
    return Split(full=Histories.from_lists([r[0] for r in rows], [js.loads(r[1]) for r in rows]))


def test_windows_cover_every_training_target_exactly_once():
    histories = Histories.from_lists([0, 1], [list(range(1, 26)), [3, 4, 5]])
    dataset = WindowDataset(training_windows(histories, VOCAB, max_length=10))
    targets = []
    for i in range(len(dataset)):
        example = dataset[i]
        assert example["input_ids"][0] == VOCAB.bos_token_id and len(example["input_ids"]) <= 11
        targets += [int(t) for t in example["labels"] if t != IGNORE]
    assert sorted(targets) == sorted(list(range(1, 26)) + [3, 4, 5])
    assert dataset.targets() == 28


def test_left_padded_inputs_keep_the_most_recent_items_after_bos():
    ids, mask = left_padded_inputs(Histories.from_lists([0, 1], [[1, 2, 3, 4], [7]]), VOCAB, 3)
    bos = VOCAB.bos_token_id
    assert ids.tolist() == [[bos, 2, 3, 4], [0, 0, bos, 7]]
    assert mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]


def run_tiny_sft(tmp_path, settings: SFTSettings, vectors=None, log=lambda _: None, **options):
    split = tiny_split()
    return train_sft(
        split.train,
        *split.validation(),
        VOCAB,
        settings,
        tmp_path / "work",
        tmp_path / "out",
        vectors,
        log=log,
        **options,
    )


def test_stage1_keeps_the_text_rows_then_stage2_trains_them(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)
    settings = SFTSettings(**TINY, stage1_epochs=2, stage2_epochs=1, init_std=0.1, patience=5)
    report = run_tiny_sft(tmp_path, settings, vectors)
    reference = SASRecModelFactory.with_text_rows(settings, vectors)
    items = torch.from_numpy(VOCAB.item_token_ids)
    stage1 = load_checkpoint(tmp_path / "work" / "stage1" / "best").get_input_embeddings().weight
    final = load_checkpoint(tmp_path / "out").get_input_embeddings().weight
    assert torch.equal(stage1[items], reference[items])
    assert not torch.equal(final[items], reference[items])
    assert [(e.stage, e.epoch) for e in report.epochs] == [(1, 1), (1, 2), (2, 1)]
    assert set(report.best_metrics) == {"hr@10", "ndcg@10", "mrr@10"}
    assert report.tokens_per_s > 0
    shape = dict(vocab_size=VOCAB.vocab_size, num_hidden_layers=settings.num_hidden_layers, **TINY)
    assert report.parameters == expected_parameters(settings.variant, shape)


def test_rows_without_text_skip_the_frozen_stage(tmp_path):
    vectors = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)
    settings = SFTSettings(**TINY, stage1_epochs=2, stage2_epochs=1, init_std=0.1, patience=5)
    lines = []
    report = run_tiny_sft(tmp_path, settings, vectors, log=lines.append, rows_from_text=False)
    assert [(e.stage, e.epoch) for e in report.epochs] == [(2, 1)]
    assert any("stage 1" in line and "skipped" in line for line in lines)


def test_the_trainer_smooths_labels_by_the_setting(tmp_path):
    from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
    from recsys_pipeline.training.sft import SASRecTrainer, Stage, training_arguments
    from recsys_pipeline.training.windows import collate

    histories = Histories.from_lists([0, 1], [list(range(1, 12)), [3, 4, 5]])
    windows = WindowDataset(training_windows(histories, VOCAB, max_length=10))
    batch = collate([windows[i] for i in range(len(windows))], VOCAB.pad_token_id)
    settings = SFTSettings(**TINY, label_smoothing=0.3)
    model = SASRecForCausalLM(settings.sasrec_config(VOCAB)).eval()
    args = training_arguments(settings, Stage(2, 1, 1e-3), tmp_path, "cpu")
    trainer = SASRecTrainer(model=model, args=args, train_dataset=windows, eval_dataset=windows)
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        plain, smoothed = (
            model(**batch, return_logits=False, label_smoothing=e).loss for e in (0.0, 0.3)
        )
    assert loss.item() == pytest.approx(smoothed.item(), rel=1e-6)
    assert abs(smoothed.item() - plain.item()) > 1e-3


def test_averaged_checkpoints_are_served_only_where_they_validate_better(tmp_path, monkeypatch):
    from recsys_pipeline.training import sft
    from recsys_pipeline.training.averaging import averaged_model
    from recsys_pipeline.training.validation import RankingEvalSet

    def tagged(window):
        mean = averaged_model(window)
        mean.is_mean = True
        return mean

    measured = RankingEvalSet.metrics
    monkeypatch.setattr(sft, "averaged_model", tagged)
    settings = SFTSettings(
        **TINY, init="random", stage2_epochs=3, patience=5, average_checkpoints=2
    )
    for served in (True, False):
        # the mean's validation NDCG@10 set far above, then far below, any epoch's
        shift = 1.0 if served else -1.0

        def metrics(self, model, shift=shift):
            found = measured(self, model)
            return {**found, "ndcg@10": shift} if getattr(model, "is_mean", False) else found

        monkeypatch.setattr(RankingEvalSet, "metrics", metrics)
        folder = tmp_path / str(served)
        report = run_tiny_sft(folder, settings)
        window = [folder / "work" / "stage2" / name for name in report.averaged["checkpoints"]]
        best = max(report.epochs, key=lambda e: e.metrics["ndcg@10"])
        assert len(window) == min(2, best.epoch) and report.averaged["kept"] is served
        expected = (averaged_model(window) if served else load_checkpoint(window[-1])).state_dict()
        weights = load_checkpoint(folder / "out").state_dict()
        assert all(torch.equal(weights[name], expected[name]) for name in expected)
        assert (report.best_metrics == report.averaged["metrics"]) is served


class SASRecModelFactory:
    @staticmethod
    def with_text_rows(settings: SFTSettings, vectors: np.ndarray) -> torch.Tensor:
        from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM

        model = SASRecForCausalLM(settings.sasrec_config(VOCAB))
        init_item_rows(model, VOCAB, vectors, settings.init_std)
        return model.get_input_embeddings().weight.detach()


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    settings = SFTSettings(**TINY, init="random", stage2_epochs=3, patience=5)
    original = Trainer._save_checkpoint
    saves = []

    def save_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        saves.append(self.state.global_step)
        if len(saves) == 2:
            raise KeyboardInterrupt("simulated kill after the second epoch's checkpoint")

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_tiny_sft(tmp_path, settings)
    killed_at = saves[-1]
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    report = run_tiny_sft(tmp_path, settings)
    assert report.resumed_from is not None and report.resumed_from.endswith(
        f"checkpoint-{killed_at}"
    )
    checkpoints = (tmp_path / "work" / "stage2").glob("checkpoint-*")
    last = max(checkpoints, key=lambda path: int(path.name.removeprefix("checkpoint-")))
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["global_step"] == killed_at * 3 // 2  # the step counter went on from the kill
    assert [e.epoch for e in report.epochs] == [1, 2, 3]
    assert load_checkpoint(tmp_path / "out").config.variant == settings.variant


def test_a_checkpoint_cut_off_mid_save_is_removed_and_the_one_before_resumes(tmp_path, monkeypatch):
    settings = SFTSettings(**TINY, init="random", stage2_epochs=3, patience=5)
    original = Trainer._save_checkpoint
    saves = []

    def die_mid_save(self, *args, **kwargs):
        saves.append(self.state.global_step)
        if len(saves) < 3:
            return original(self, *args, **kwargs)
        # the model is on disk, the trainer state (written last) is not
        self.save_model(str(self.args.output_dir) + f"/checkpoint-{self.state.global_step}")
        raise KeyboardInterrupt("simulated kill while the third checkpoint was written")

    monkeypatch.setattr(Trainer, "_save_checkpoint", die_mid_save)
    with pytest.raises(KeyboardInterrupt):
        run_tiny_sft(tmp_path, settings)
    stage = tmp_path / "work" / "stage2"
    cut_off = stage / f"checkpoint-{saves[-1]}"
    assert cut_off.is_dir() and not (cut_off / "trainer_state.json").exists()
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    report = run_tiny_sft(tmp_path, settings)
    assert report.resumed_from.endswith(f"checkpoint-{saves[-2]}")
    assert [e.epoch for e in report.epochs] == [1, 2, 3]
    for checkpoint in stage.glob("checkpoint-*"):  # nothing half-written is left
        assert (checkpoint / "trainer_state.json").is_file()


def test_broken_checkpoints_are_named_clearly(tmp_path):
    from recsys_pipeline_tests.test_models import tiny_model

    tiny_model("sasrec").save_pretrained(tmp_path / "ok")
    check_checkpoint(tmp_path / "ok")
    weights = tmp_path / "ok" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "ok")
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load_checkpoint(tmp_path / "ok")
    with pytest.raises(CheckpointError, match="no config.json"):
        check_checkpoint(tmp_path)


def test_settings_validation():
    with pytest.raises(ValueError, match="not divisible"):
        SFTSettings(hidden_size=65, num_attention_heads=2)
    with pytest.raises(ValueError, match="init\n  Input should be 'text' or 'random'"):
        SFTSettings(init="pretrained")
    with pytest.raises(ValueError, match="stage2_epochs\n  Input should be greater than or equal"):
        SFTSettings(stage2_epochs=0)
