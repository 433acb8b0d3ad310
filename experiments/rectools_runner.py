"""Runs inside RecTools' own virtual environment (see references.py, which writes the input).
Trains RecTools 0.19 SASRecModel (softmax loss, session_max_len 20) on the training parts, picks
the epoch by validation NDCG@10 with viewed items filtered, recommends the test top 10 from the
training part + validation item (filter_viewed=True), and writes the lists as JSON. It checks
first that RecTools' training and validation data are exactly our split.

    python rectools_runner.py INTERACTIONS_CSV SETTINGS_JSON OUT_JSON
"""

import argparse
import copy
import json
import time

import numpy as np
import pandas as pd
import torch
from pytorch_lightning import Callback, Trainer, seed_everything
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import SASRecModel

TOP_K = 10
SESSION_MAX_LEN = 20


class BestOnValidation(Callback):
    """NDCG@10 of the validation targets with viewed items filtered (as the test is scored);
    keeps the best epoch's weights in memory and stops after ``patience`` epochs without gain."""

    def __init__(self, patience):
        self.patience, self.best, self.best_state, self.history = patience, -1.0, None, []
        self.since_best, self.epoch_seconds = 0, []

    def on_train_epoch_start(self, trainer, pl_module):
        self.epoch_started = time.perf_counter()

    def on_validation_epoch_start(self, trainer, pl_module):
        self.gains = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_):
        logits = outputs["logits"].detach().float().reshape(len(batch["x"]), -1).clone()
        logits.scatter_(1, batch["x"], float("-inf"))  # viewed items, and column 0 (padding)
        target = batch["y"][:, -1:]
        target_score = logits.gather(1, target)
        rank = (logits > target_score).sum(1) + 1
        self.gains.append(torch.where(rank <= TOP_K, 1.0 / torch.log2(rank + 1.0), 0.0))

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        ndcg = float(torch.cat(self.gains).mean())
        self.history.append(ndcg)
        # Lightning validates inside the training epoch, so this is training + validation
        seconds = time.perf_counter() - self.epoch_started
        self.epoch_seconds.append(seconds)
        print(f"epoch {len(self.history)}: valid ndcg@10 {ndcg:.4f} ({seconds:.0f} s)", flush=True)
        if ndcg > self.best:
            self.best, self.since_best = ndcg, 0
            self.best_state = copy.deepcopy(pl_module.state_dict())
        else:
            self.since_best += 1
            if self.since_best >= self.patience:
                trainer.should_stop = True


def check_split(model, frame):
    """RecTools' training interactions and validation targets, as it prepared them, against ours:
    counts, and every user's rows in a sample."""
    prep = model.data_preparator
    train = prep.train_dataset
    got_train = pd.DataFrame(
        {
            "user": train.user_id_map.convert_to_external(train.interactions.df[Columns.User]),
            "item": train.item_id_map.convert_to_external(train.interactions.df[Columns.Item]),
            "order": train.interactions.df[Columns.Datetime].astype("int64") // 10**9,
        }
    )
    ours = frame[frame.part == "train"].sort_values("order")
    # RecTools trains on the last session_max_len + 1 items of the users with at least 2
    # (train_min_user_interactions).
    long_enough = ours.groupby("user").item.transform("size") >= 2
    ours_train = ours[long_enough].groupby("user").tail(SESSION_MAX_LEN + 1)
    val = prep.val_interactions
    val_targets = val[val[Columns.Weight] > 0]
    # ... and validates on the targets of those users whose item it has trained on
    ours_valid = frame[
        (frame.part == "valid")
        & frame.user.isin(ours_train.user)
        & frame.item.isin(ours_train.item)
    ]
    counts = {
        "train rows": (len(got_train), len(ours_train)),
        "validation targets": (len(val_targets), len(ours_valid)),
    }
    for name, (got, want) in counts.items():
        if got != want:
            raise SystemExit(f"RecTools' split differs from ours: {name} {got} vs {want}")
    got_valid = dict(
        zip(
            train.user_id_map.convert_to_external(val_targets[Columns.User]),
            train.item_id_map.convert_to_external(val_targets[Columns.Item]),
            strict=True,
        )
    )
    if got_valid != dict(zip(ours_valid.user, ours_valid.item, strict=True)):
        raise SystemExit("RecTools' validation targets differ from ours")
    sample = np.random.default_rng(0).choice(ours_train.user.unique(), 200, replace=False)
    for user in sample:
        got = got_train[got_train.user == user].sort_values("order").item.tolist()
        want = ours_train[ours_train.user == user].sort_values("order").item.tolist()
        if got != want:
            raise SystemExit(f"RecTools' training sequence of user {user} differs from ours")
    return {name: got for name, (got, _) in counts.items()} | {"sampled users": len(sample)}


def top_lists(model, dataset, users):
    reco = model.recommend(
        users, dataset, k=TOP_K, filter_viewed=True, on_unsupported_targets="warn"
    )
    reco = reco.sort_values([Columns.User, Columns.Rank])
    return {
        str(u): [str(i) for i in items] for u, items in reco.groupby(Columns.User)[Columns.Item]
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("interactions")
    parser.add_argument("settings")
    parser.add_argument("out")
    args = parser.parse_args()
    with open(args.settings) as handle:
        settings = json.load(handle)
    frame = pd.read_csv(args.interactions, dtype={"user": str, "item": str, "part": str})
    torch.set_num_threads(settings.pop("threads"))
    seed_everything(settings.pop("seed"), workers=True)
    patience, max_epochs = settings.pop("patience"), settings.pop("epochs")

    fit_rows = frame[frame.part != "test"]
    # The validation targets are each user's last row; they are told apart by a time past every
    # training row (get_val_mask_func sees only the standard columns).
    threshold = int(frame.order.max()) + 1
    order = fit_rows.order + np.where(fit_rows.part == "valid", threshold, 0)
    interactions = pd.DataFrame(
        {
            Columns.User: fit_rows.user,
            Columns.Item: fit_rows.item,
            Columns.Weight: 1.0,
            Columns.Datetime: pd.to_datetime(order, unit="s"),
        }
    )
    model = SASRecModel(
        loss="softmax",
        session_max_len=SESSION_MAX_LEN,
        epochs=max_epochs,
        get_val_mask_func=valid_mask,
        get_val_mask_func_kwargs={"threshold": threshold},
        get_trainer_func=lambda: Trainer(
            max_epochs=max_epochs,
            accelerator="cpu",
            callbacks=[BestOnValidation(patience)],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            num_sanity_val_steps=0,
        ),
        **settings,
    )
    dataset = Dataset.construct(interactions)
    started = time.perf_counter()
    model.fit(dataset)
    fit_seconds = time.perf_counter() - started
    split_check = check_split(model, frame)
    # RecTools fits a copy of the trainer, callbacks included
    (best,) = [c for c in model.fit_trainer.callbacks if isinstance(c, BestOnValidation)]
    model.lightning_model.load_state_dict(best.best_state)

    test_users = frame[frame.part == "test"].user.unique()
    result = {
        "split_checked": split_check,
        "valid_ndcg@10_by_epoch": best.history,
        "epoch_seconds": best.epoch_seconds,
        "best_valid_ndcg@10": best.best,
        "epochs": len(best.history),
        "best_epoch": int(np.argmax(best.history)) + 1,
        "fit_seconds": fit_seconds,
        "test_top": top_lists(model, dataset, test_users),
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle)


def valid_mask(raw_interactions, threshold):
    return (raw_interactions[Columns.Datetime] >= pd.Timestamp(threshold, unit="s")).to_numpy()


if __name__ == "__main__":
    main()
