from __future__ import annotations

import copy
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.training.dpo import build_trainer
from recsys_pipeline.training.negatives import EASY, HARD, RANDOM, MiningSettings, mine_negatives
from recsys_pipeline.training.pairs import (
    PAIRS_FILE,
    TRL_FILE,
    PairsFileError,
    build_pairs,
    read_pairs,
    write_pairs,
)
from recsys_pipeline.training.settings import DPOSettings
from recsys_pipeline_tests.test_models import tiny_model

VOCAB = ItemVocab(item_ids=np.arange(1, 37))


def random_split(n_users: int = 40, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    return Split(
        full=Histories.from_lists(
            list(range(n_users)),
            [
                rng.choice(np.arange(1, 37), rng.integers(2, 9), replace=False).tolist()
                for _ in range(n_users)
            ],
        )
    )


def vectors(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((36, 8)).astype(np.float32)


def test_negatives_never_touch_the_users_whole_sequence():
    split = random_split()
    pairs = build_pairs(split, VOCAB, vectors(), 20, MiningSettings(negatives_per_positive=3))
    whole = {int(u): set(split.full[i].tolist()) for i, u in enumerate(split.full.user_ids)}
    assert len(pairs) == 3 * int((split.train.lengths >= 2).sum())
    for i in range(len(pairs)):
        user = int(pairs.user_ids[i])
        assert int(pairs.rejected[i]) not in whole[user]  # held-out targets included
        assert pairs.rejected[i] != pairs.chosen[i]
        row = int(np.flatnonzero(split.full.user_ids == user)[0])
        train = split.train[row].tolist()
        assert pairs.chosen[i] == train[-1] and pairs.prompts[i].tolist() == train[:-1]


def test_mining_is_deterministic_for_a_seed():
    split = random_split()
    first = build_pairs(split, VOCAB, vectors(), 20, MiningSettings(seed=7))
    second = build_pairs(split, VOCAB, vectors(), 20, MiningSettings(seed=7))
    other = build_pairs(split, VOCAB, vectors(), 20, MiningSettings(seed=8))
    assert np.array_equal(first.rejected, second.rejected)
    assert not np.array_equal(first.rejected, other.rejected)


def test_hard_negatives_are_the_nearest_and_shares_follow_the_setting():
    vecs = vectors(1)
    positives = np.zeros(4000, dtype=np.int64)  # item column 0, many times
    mined = mine_negatives(
        vecs,
        positives,
        [np.array([], dtype=np.int64)] * 4000,
        MiningSettings(hard_share=0.3, hard_ranks=3, easy_ranks=20),
    )
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    nearest = np.argsort(-(unit @ unit[0]))[1:4]
    assert set(mined.negative[mined.kind == HARD].tolist()) <= set(nearest.tolist())
    assert 0.25 < (mined.kind == HARD).mean() < 0.35
    assert not (set(mined.negative[mined.kind == EASY].tolist()) & set(nearest.tolist()))


def test_tiny_catalogs_never_crash():
    vecs = vectors()[:5]  # five items
    # pair 0: only item 4 is allowed; pair 1: nothing is allowed; pair 2: 3 negatives wanted, 2 exist
    exclusions = [np.array([1, 2, 3]), np.array([1, 2, 3, 4]), np.array([1, 2])]
    mined = mine_negatives(
        vecs,
        np.array([0, 0, 0]),
        exclusions,
        MiningSettings(negatives_per_positive=3, hard_ranks=1, easy_ranks=2),
    )
    assert mined.pair_row.tolist() == [0, 2, 2]
    assert mined.negative[0] == 4 and sorted(mined.negative[1:].tolist()) == [3, 4]
    assert set(mined.kind.tolist()) <= {HARD, EASY, RANDOM}


def test_pairs_round_trip_and_trl_text_form(tmp_path):
    pairs = build_pairs(random_split(), VOCAB, vectors(), 5, MiningSettings())
    write_pairs(pairs, tmp_path)
    back = read_pairs(tmp_path, VOCAB)
    assert np.array_equal(back.rejected, pairs.rejected) and np.array_equal(
        back.prompts.items, pairs.prompts.items
    )
    trl = pq.read_table(tmp_path / TRL_FILE).to_pylist()
    assert trl[0]["chosen"] == f"<{pairs.chosen[0]}>"
    assert trl[0]["prompt"] == "".join(f"<{i}>" for i in pairs.prompts[0].tolist())


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("rejected_item_id", "chosen", "field 'rejected_item_id': equals chosen_item_id"),
        ("chosen_item_id", 999, "field 'chosen_item_id': item id 999 is not in the vocabulary"),
    ],
)
def test_bad_pairs_files_are_clear_errors(tmp_path, column, value, message):
    pairs = build_pairs(random_split(), VOCAB, vectors(), 5, MiningSettings())
    write_pairs(pairs, tmp_path)
    table = pq.read_table(tmp_path / PAIRS_FILE).to_pandas()
    table.loc[3, column] = table.loc[3, "chosen_item_id"] if value == "chosen" else value
    table.to_parquet(tmp_path / PAIRS_FILE)
    with pytest.raises(PairsFileError, match=f"pairs.parquet, row 3, {message}"):
        read_pairs(tmp_path, VOCAB)


def test_trl_accepts_the_text_form(tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from recsys_pipeline.data.vocab import build_tokenizer

    pairs = build_pairs(random_split(), VOCAB, vectors(), 5, MiningSettings())
    write_pairs(pairs, tmp_path)
    dataset = Dataset.from_list(pq.read_table(tmp_path / TRL_FILE).to_pylist()[:8])
    model = tiny_model("sasrec_rope").train()
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=1,
        per_device_train_batch_size=4,
        bf16=False,
        activation_checkpointing=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    trainer = DPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model).eval(),
        args=args,
        train_dataset=dataset,
        processing_class=build_tokenizer(VOCAB),
    )
    trainer.train()
    assert trainer.state.global_step == 1


def test_two_dpo_steps_move_the_policy_and_keep_the_reference(tmp_path):
    pairs = build_pairs(random_split(), VOCAB, vectors(), 5, MiningSettings())
    policy = tiny_model("sasrec_rope").train()
    reference = copy.deepcopy(policy)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    trainer = build_trainer(
        policy, reference, pairs, VOCAB, DPOSettings(batch_size=8, learning_rate=1e-2), tmp_path
    )
    trainer.args.max_steps = 2
    trainer.train()
    assert trainer.state.global_step == 2
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters())
    assert all(torch.equal(p, before[n]) for n, p in reference.named_parameters())
    logged = [h for h in trainer.state.log_history if "rewards/margins" in h]
    assert logged  # TRL's reward margins and accuracies are logged


def test_serving_choice():
    from recsys_pipeline.models.served import choose_served

    assert choose_served("best", sft_ndcg=0.07, dpo_ndcg=0.07) == "sft"  # a tie keeps SFT
    assert choose_served("best", sft_ndcg=0.07, dpo_ndcg=0.06) == "sft"
    assert choose_served("best", sft_ndcg=0.07, dpo_ndcg=0.08) == "dpo"
    assert choose_served("dpo", sft_ndcg=0.07, dpo_ndcg=0.06) == "dpo"
    with pytest.raises(ValueError, match="serve_model"):
        choose_served("newest", 0.0, 0.0)


def test_dpo_settings_survive_a_json_round_trip_and_validate():
    settings = DPOSettings(**json.loads(json.dumps(DPOSettings().model_dump())))
    assert settings == DPOSettings()
    assert settings.loss_type == ["sigmoid", "sft"] and settings.loss_weights == [1.0, 1.0]
    with pytest.raises(ValueError, match="loss_weights needs one weight per loss_type"):
        DPOSettings(loss_type=["sigmoid"], loss_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="beta\n  Input should be greater than 0"):
        DPOSettings(beta=0.0)
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        DPOSettings(betta=0.2)  # a typo in run config is an error, never silently ignored


def test_mining_settings_validate():
    with pytest.raises(ValueError, match="need hard_ranks < easy_ranks"):
        MiningSettings(hard_ranks=20, easy_ranks=20)
    with pytest.raises(ValueError, match="hard_share\n  Input should be less than or equal to 1"):
        MiningSettings(hard_share=1.5)
