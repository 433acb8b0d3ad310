"""Runs inside RecBole's own virtual environment (see recbole_baseline.py, which writes the
atomic files and the expected split). Trains RecBole 1.2.1 SASRec (CE loss) on the pre-split
files, checks that RecBole's validation and test rows are exactly our split, and writes the
results as JSON: the test metrics as RecBole scores them (its full-sort evaluation of sequential
models never masks the items already in the sequence), and those of the same trained model with
the sequence's items masked. With --epochs N it only times N training epochs (no validation, no
test).

    python recbole_runner.py DATA_DIR EXPECTED_SPLIT_JSON OUT_JSON [--seed S] [--epochs N]
"""

import argparse
import json
import os
import statistics
import sys
import time

# RecBole reloads its own best checkpoint, written earlier in this same run, with torch.load;
# torch >= 2.6 defaults to weights_only=True, which that pickle does not pass.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import SASRec  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_logger, init_seed  # noqa: E402


class TimedTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.epoch_seconds = []
        self.mask_history = False

    def _train_epoch(self, *args, **kwargs):
        started = time.perf_counter()
        result = super()._train_epoch(*args, **kwargs)
        self.epoch_seconds.append(time.perf_counter() - started)
        return result

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self.mask_history:  # the input sequence's items (padding 0 is already -inf)
            scores.scatter_(1, interaction[self.model.ITEM_SEQ].to(scores.device), -float("inf"))
        return interaction, scores, positive_u, positive_i


def metrics(result):
    return {k.lower().replace("hit@", "hr@"): float(v) for k, v in result.items()}


def rows(dataset, split):
    uid, iid = dataset.uid_field, dataset.iid_field
    users = dataset.id2token(uid, split.dataset.inter_feat[uid].numpy())
    targets = dataset.id2token(iid, split.dataset.inter_feat[iid].numpy())
    histories = split.dataset.inter_feat[iid + "_list"].numpy()
    lengths = split.dataset.inter_feat["item_length"].numpy()
    return {
        str(u): [[str(t) for t in dataset.id2token(iid, h[:n])], str(target)]
        for u, target, h, n in zip(users, targets, histories, lengths, strict=True)
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir")
    parser.add_argument("expected_path")
    parser.add_argument("out_path")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--epochs", type=int, help="time this many epochs only")
    args = parser.parse_args()
    data_dir, expected_path, out_path = args.data_dir, args.expected_path, args.out_path
    config = Config(
        model="SASRec",
        dataset="games",
        config_dict={
            "data_path": data_dir,
            "benchmark_filename": ["train", "valid", "test"],
            "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
            "alias_of_item_id": ["item_id_list"],
            "MAX_ITEM_LIST_LENGTH": 20,
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "hidden_size": 64,
            "inner_size": 256,
            "n_layers": 2,
            "n_heads": 2,
            "hidden_dropout_prob": 0.5,
            "attn_dropout_prob": 0.5,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-12,
            "initializer_range": 0.02,
            "train_batch_size": 512,
            "eval_batch_size": 4096,
            "learning_rate": 1e-3,
            "epochs": args.epochs or 200,
            "stopping_step": 4,
            "eval_step": 1,
            "metrics": ["Hit", "NDCG", "MRR"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "eval_args": {"mode": "full", "order": "TO"},
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "seed": args.seed,
            "reproducibility": True,
            "checkpoint_dir": os.path.join(data_dir, "saved"),
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)

    with open(expected_path) as handle:
        expected = json.load(handle)
    same_valid = rows(dataset, valid) == expected["valid"]
    same_test = rows(dataset, test) == expected["test"]
    if not (same_valid and same_test):
        sys.exit(
            f"RecBole's split differs from ours (valid equal: {same_valid}, test equal: {same_test})"
        )

    model = SASRec(config, train.dataset).to(config["device"])
    trainer = TimedTrainer(config, model)
    started = time.perf_counter()
    if args.epochs:  # throughput only: RecBole skips evaluation when given no valid data
        trainer.fit(train, None, saved=False, show_progress=False)
        result = {}
    else:
        best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
        test_result = trainer.evaluate(test, load_best_model=True, show_progress=False)
        trainer.mask_history = True
        masked = trainer.evaluate(test, load_best_model=False, show_progress=False)
        result = {
            "test": metrics(test_result),
            "test_masked": metrics(masked),
            "best_valid_ndcg@10": float(best_valid),
        }
    fit_seconds = time.perf_counter() - started
    lengths = train.dataset.inter_feat["item_length"].numpy()
    epoch = statistics.median(trainer.epoch_seconds)
    with open(out_path, "w") as handle:
        json.dump(
            {
                "split_checked": True,
                **result,
                "epochs": len(trainer.epoch_seconds),
                "fit_seconds": fit_seconds,
                "median_epoch_seconds": epoch,
                "train_samples": int(len(lengths)),
                "input_tokens_per_epoch": int(lengths.sum()),
                "input_tokens_per_s": float(lengths.sum() / epoch),
                "targets_per_s": float(len(lengths) / epoch),
            },
            handle,
            indent=2,
        )


if __name__ == "__main__":
    main()
