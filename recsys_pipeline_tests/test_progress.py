"""Progress lines of long work: the helper on a fake clock (no sleeps), the Trainer callback, and
each plain function that takes a ``progress_log``, on tiny data."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.monitoring.progress import Progress
from recsys_pipeline.training.progress import StepProgress
from recsys_pipeline_tests.fake_services import MediaWikiFake, OpenAIFake
from recsys_pipeline_tests.http_fakes import serve


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(total: int = 50_546, interval: float = 30.0, **kwargs) -> tuple[Progress, list, Clock]:
    lines, clock = [], Clock()
    meter = Progress(lines.append, "evaluation", total, "users", interval, clock=clock, **kwargs)
    return meter, lines, clock


# --- the helper -----------------------------------------------------------------------------------


def test_a_line_reads_done_total_share_rate_and_time_left():
    meter, lines, clock = progress()
    clock.now += 30
    meter.update(12_300)
    assert lines == ["evaluation: 12,300 / 50,546 users (24.3%), 410 users/s, about 1m 33s left"]


def test_lines_come_at_most_every_interval():
    meter, lines, clock = progress(total=1000)
    for _ in range(100):  # 100 updates over 99 seconds: lines at 30, 60 and 90 s only
        meter.update(10)
        clock.now += 1
    assert len(lines) == 3
    assert [line.split(":")[1].split("(")[0].strip() for line in lines] == [
        "310 / 1,000 users",
        "610 / 1,000 users",
        "910 / 1,000 users",
    ]
    assert all(", 10 users/s, about " in line for line in lines)
    assert lines[0].endswith("about 1m 7s left")  # 690 left at 310 in 30 s


def test_the_end_is_logged_once_with_the_time_it_took():
    meter, lines, clock = progress(total=400)
    clock.now += 10
    meter.update(400)  # within the interval: no line yet
    clock.now += 115
    meter.finish()
    meter.finish()
    assert lines == ["evaluation: 400 / 400 users (100.0%), 3.2 users/s, took 2m 5s"]


def test_a_with_block_logs_the_end_unless_it_raised():
    meter, lines, clock = progress(total=3)
    with meter:
        meter.update(3)
        clock.now += 2
    assert lines == ["evaluation: 3 / 3 users (100.0%), 1.5 users/s, took 2s"]
    meter, lines, _ = progress(total=3)
    with pytest.raises(RuntimeError), meter:
        meter.update(1)
        raise RuntimeError("stopped")
    assert lines == []


def test_interval_zero_logs_every_update():
    meter, lines, clock = progress(total=4, interval=0)
    for _ in range(4):
        clock.now += 1
        meter.update()
    meter.finish()
    assert lines[1] == "evaluation: 2 / 4 users (50.0%), 1 users/s, about 2s left"
    # the last update is the end: logged once, by the closing line
    assert len(lines) == 4 and lines[-1] == "evaluation: 4 / 4 users (100.0%), 1 users/s, took 4s"


def test_a_resumed_run_counts_its_rate_from_its_own_work():
    meter, lines, clock = progress(total=1000, done=600, interval=0)
    clock.now += 40
    meter.update(100)
    assert lines == ["evaluation: 700 / 1,000 users (70.0%), 2.5 users/s, about 2m 0s left"]


def test_hours_nothing_done_yet_and_an_empty_total():
    meter, lines, clock = progress(total=100, interval=0)
    clock.now += 60
    meter.update(1)
    assert lines == ["evaluation: 1 / 100 users (1.0%), 0.017 users/s, about 1h 39m left"]
    meter, lines, clock = progress(total=10, interval=0)
    clock.now += 30
    meter.update(0)  # stuck: a rate of 0 and no time left to show
    assert lines == ["evaluation: 0 / 10 users (0.0%), 0 users/s"]
    meter, lines, _ = progress(total=0)
    meter.finish()  # nothing to do, and no time passed: no rate
    assert lines == ["evaluation: 0 / 0 users (100.0%), took 0s"]


def test_no_log_counts_silently():
    meter = Progress(None, "silent", 3, "items", interval=0)
    with meter:
        meter.update(3)
    assert meter.done == 3


def test_updates_from_many_threads_all_count():
    meter, lines, _ = progress(total=8000, interval=0)

    def work() -> None:
        for _ in range(1000):
            meter.update()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    meter.finish()
    assert meter.done == 8000 and len(lines) == 8000  # 7,999 updates, then the closing line
    assert lines[-2].startswith("evaluation: 7,999 / 8,000 users (100.0%)")
    assert lines[-1].startswith("evaluation: 8,000 / 8,000 users (100.0%)")


# --- the Trainer callback -------------------------------------------------------------------------


def test_step_progress_follows_the_trainers_steps_from_a_resumed_step(tmp_path):
    lines, clock = [], Clock()
    callback = StepProgress(lines.append, "DPO", interval=30, clock=clock)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    state, control = TrainerState(max_steps=100, global_step=40), TrainerControl()
    callback.on_train_begin(args, state, control)
    for _ in range(60):
        clock.now += 1
        state.global_step += 1
        callback.on_step_end(args, state, control)
    callback.on_train_end(args, state, control)
    assert lines == [
        "DPO: 70 / 100 steps (70.0%), 1 steps/s, about 30s left",
        "DPO: 100 / 100 steps (100.0%), 1 steps/s, took 1m 0s",  # the last step is the end
    ]


def test_sft_logs_its_steps_for_each_stage(tmp_path):
    from recsys_pipeline.training.settings import SFTSettings
    from recsys_pipeline.training.sft import train_sft
    from recsys_pipeline_tests.test_training import TINY, VOCAB, tiny_split

    split, lines = tiny_split(), []
    settings = SFTSettings(stage1_epochs=1, stage2_epochs=1, report_to="none", **TINY)
    vectors = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)
    out = tmp_path / "out"
    train_sft(
        split.train, *split.validation(), VOCAB, settings, tmp_path, out, vectors, lines.append
    )
    for stage in (1, 2):
        ends = [line for line in lines if line.startswith(f"SFT stage {stage}: ")]
        assert len(ends) == 1 and "(100.0%)" in ends[0] and "took" in ends[0], lines
    assert not (out / "tensorboard").exists()  # report_to none: no event files


def test_dpo_logs_its_steps(tmp_path):
    from recsys_pipeline.training.dpo import build_trainer
    from recsys_pipeline.training.negatives import MiningSettings
    from recsys_pipeline.training.pairs import build_pairs
    from recsys_pipeline.training.settings import DPOSettings
    from recsys_pipeline_tests.test_models import tiny_model
    from recsys_pipeline_tests.test_preference import VOCAB, random_split, vectors

    pairs = build_pairs(random_split(), VOCAB, vectors(), 5, MiningSettings())
    policy = tiny_model("sasrec_rope").train()
    settings = DPOSettings(batch_size=8, report_to="none")
    trainer = build_trainer(policy, copy.deepcopy(policy), pairs, VOCAB, settings, tmp_path)
    trainer.args.max_steps = 2
    lines = []
    trainer.add_callback(StepProgress(lines.append, "DPO"))  # as train_dpo adds it
    trainer.train()
    assert len(lines) == 1 and lines[0].startswith("DPO: 2 / 2 steps (100.0%), ")


# --- the plain functions --------------------------------------------------------------------------


def test_text_encoding_logs_its_progress():
    from recsys_pipeline.enrichment.text_vectors import BUNDLED_MODEL, encode_texts

    texts = ["Halo 3", "Half-Life 2: Episode One", "Halo 3", "Zelda"]
    lines = []
    encoded = encode_texts(texts, BUNDLED_MODEL, batch_size=1, progress_log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("text encoding: 3 / 3 texts (100.0%), ")
    # slices of the length-sorted texts give the vectors one call over all of them gives
    whole = encode_texts(texts, BUNDLED_MODEL, batch_size=64)
    assert np.allclose(encoded, whole, atol=1e-5) and np.array_equal(encoded[0], encoded[2])


def test_full_ranking_counts_the_users_each_scorer_scores():
    import torch

    from recsys_pipeline.data.histories import Histories
    from recsys_pipeline.ranking.full_ranking import counted, rank_users

    vocab = ItemVocab(item_ids=np.arange(1, 11))
    inputs = Histories.from_lists(list(range(5)), [[1, 2], [3], [4, 5, 6], [7], [8, 9]])

    def scorer(batch: Histories) -> torch.Tensor:
        return torch.arange(10, dtype=torch.float32).expand(len(batch), 10)

    lines = []
    with Progress(lines.append, "evaluation", 2 * len(inputs), "users", interval=0) as meter:
        ranked = [rank_users(counted(scorer, meter), inputs, vocab, batch_size=2) for _ in "ab"]
    assert ranked[0].top_items.shape == (5, 10) and np.array_equal(*[r.top_items for r in ranked])
    shown = [line.split(" (")[0] for line in lines]
    assert shown == [f"evaluation: {n} / 10 users" for n in (2, 4, 5, 7, 9, 10)]


def test_recommend_logs_the_users_done():
    from recsys_pipeline.ranking.retrieval import build_index, recommend
    from recsys_pipeline.ranking.scoring import item_output_vectors
    from recsys_pipeline_tests.test_models import tiny_model
    from recsys_pipeline_tests.test_retrieval import histories_for

    model = tiny_model("sasrec", max_history_length=4)
    vocab = ItemVocab(item_ids=np.arange(1, 37))
    index = build_index(item_output_vectors(model, vocab).numpy(), "flat")
    lines = []
    top = recommend(
        model, index, histories_for(30), vocab, 10, batch_size=7, progress_log=lines.append
    )
    assert top.items.shape == (30, 10)
    assert len(lines) == 1 and lines[0].startswith("top-10 recommendations: 30 / 30 users (100.0%)")


def test_wikipedia_logs_the_titles_it_asked_for(tmp_path):
    from recsys_pipeline_tests.test_enrichment import PAGES, wiki_client

    fake = MediaWikiFake(PAGES)
    titles = ["Halo 3"] + [f"Filler {i}" for i in range(119)]
    lines = []
    with serve(fake.handler()) as url:
        client = wiki_client(tmp_path, url)
        client.summaries(titles[:1])  # cached now: not asked again, not counted
        client.summaries(titles, progress_log=lines.append)
    assert len(fake.requests) == 1 + 3
    assert len(lines) == 1 and lines[0].startswith("Wikipedia: 119 / 119 titles (100.0%), ")


def test_fact_extraction_logs_every_item_llm_or_not(tmp_path):
    from recsys_pipeline_tests.test_enrichment import extractor, scripted

    items = [(f"Game {i}", "A 2001 game.", None) for i in range(5)] + [("No text", None, None)]
    lines = []
    with serve(OpenAIFake(scripted).handler()) as url:
        extractor(tmp_path, url, concurrency=3).extract(items, progress_log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("fact extraction: 6 / 6 items (100.0%), ")
