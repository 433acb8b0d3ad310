"""Benchmark: Steam matching on the real catalog, and its precision/recall on a hand-labelled
sample (experiments/steam_labels.csv: 169 items, each with the Steam app ids that are the same game,
or none).

Runs the pipeline's matcher (exact normalised title, then nearest title embedding) over all
16,859 items against the 27,075 games of ../shared/data/steam/steam.csv, times it, and prints
precision and recall of the labelled sample at several thresholds.

    .venv/bin/python -m experiments.steam_matching
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np

EXPERIMENTS = Path(__file__).resolve().parent
THRESHOLDS = (0.70, 0.75, 0.80, 0.83, 0.86, 0.88, 0.90, 0.93, 0.95)


def main() -> None:
    from experiments.common import real_data
    from recsys_pipeline.enrichment.steam import load_steam_games, match_items
    from recsys_pipeline.enrichment.text_vectors import BUNDLED_MODEL, encode_texts
    from recsys_pipeline.settings import SHARED_STEAM

    if not SHARED_STEAM.is_file():
        sys.exit(f"needs {SHARED_STEAM}")
    _, vocab, titles = real_data()
    started = time.perf_counter()
    games = load_steam_games(SHARED_STEAM).games
    matches = match_items(
        titles, games, threshold=0.0, encode=lambda t: encode_texts(t, BUNDLED_MODEL)
    )
    seconds = time.perf_counter() - started
    print(f"matched {len(titles)} items against {len(games)} games in {seconds:.1f} s (bar: 60 s)")

    row_of = {int(i): r for r, i in enumerate(vocab.item_ids)}
    appids = games.appid.to_numpy()
    labelled = list(csv.DictReader((EXPERIMENTS / "steam_labels.csv").open()))
    truth = [{int(a) for a in r["steam_appids"].split(";") if a} for r in labelled]
    rows = [row_of[int(r["item_id"])] for r in labelled]
    predicted = [int(appids[matches.game_row[r]]) for r in rows]
    score = np.array([matches.score[r] for r in rows])
    exact = np.array([matches.kind[r] == "exact" for r in rows])
    positives = sum(1 for t in truth if t)
    print(f"labelled sample: {len(labelled)} items, {positives} with a Steam game")
    print("| threshold | matched | precision | recall | F1 |")
    print("|---|---|---|---|---|")
    for threshold in THRESHOLDS:
        accepted = exact | (score >= threshold)
        correct = sum(1 for a, p, t in zip(accepted, predicted, truth, strict=True) if a and p in t)
        precision = correct / max(1, accepted.sum())
        recall = correct / positives
        f1 = 2 * precision * recall / max(1e-9, precision + recall)
        print(f"| {threshold:.2f} | {accepted.sum()} | {precision:.3f} | {recall:.3f} | {f1:.3f} |")
    from recsys_pipeline.enrichment.steam import SteamMatchSettings

    chosen = SteamMatchSettings().threshold
    share = float(((matches.kind == "exact") | (matches.score >= chosen)).mean())
    print(f"whole catalog matched at the default threshold {chosen}: {share:.1%}")


if __name__ == "__main__":
    main()
