"""Benchmark: Steam matching on the real catalog, and its precision/recall on a hand-labelled
sample (experiments/steam_labels.csv: 169 items, each with the Steam app ids that are the same game,
or none).

Runs the pipeline's matcher (exact normalised title, then nearest title embedding) over all
16,859 items against the 27,075 games of ../shared/data/steam/steam.csv, times it, and prints
precision and recall of the labelled sample at several thresholds. The figures are kept in
experiments/results/steam_matching.json (``--cache``) with the command, commit, machine and date,
where ``python -m experiments.report`` reads them.

    .venv/bin/python -m experiments.steam_matching [--cache PATH]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import TypedDict

import numpy as np

from recsys_pipeline.monitoring.provenance import command_line, save_result

EXPERIMENTS = Path(__file__).resolve().parent
THRESHOLDS = (0.70, 0.75, 0.80, 0.83, 0.86, 0.88, 0.90, 0.93, 0.95)
CACHE = EXPERIMENTS / "results" / "steam_matching.json"
BAR_SECONDS = 60


class AtThreshold(TypedDict):
    threshold: float
    matched: int  # of the labelled sample
    precision: float
    recall: float
    f1: float


class Measurement(TypedDict):
    items: int  # the catalog's
    games: int  # Steam's
    seconds: float  # loading the games and matching every item
    labelled: int  # the hand-labelled sample's items
    positives: int  # those with a Steam game
    default_threshold: float  # SteamMatchSettings'
    catalog_share: float  # of the items matched at the default threshold
    by_threshold: list[AtThreshold]


def cache_rows(measured: Measurement) -> list[dict[str, str]]:
    """The cached table: the labelled sample's precision and recall by threshold, the default's
    marked."""
    rows = []
    for at in measured["by_threshold"]:
        threshold = f"{at['threshold']:.2f}"
        if abs(at["threshold"] - measured["default_threshold"]) < 1e-9:
            threshold = f"**{threshold}** (default)"
        rows.append(
            {
                "threshold": threshold,
                f"matched (of {measured['labelled']})": str(at["matched"]),
                "precision": f"{at['precision']:.3f}",
                "recall": f"{at['recall']:.3f}",
                "F1": f"{at['f1']:.3f}",
            }
        )
    return rows


def cache_notes(measured: Measurement) -> list[str]:
    """The run's time, the sample's size and the catalog's share matched at the default."""
    return [
        f"Matched {measured['items']:,} items against {measured['games']:,} games in "
        f"{measured['seconds']:.1f} s (bar: {BAR_SECONDS} s).",
        f"The labelled sample (`experiments/steam_labels.csv`): {measured['labelled']} items, "
        f"{measured['positives']} of them with a Steam game.",
        f"The whole catalog matched at the default threshold {measured['default_threshold']:.2f}: "
        f"{measured['catalog_share']:.1%}.",
    ]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the figures are kept")
    args = parser.parse_args(argv)
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
    print(
        f"matched {len(titles)} items against {len(games)} games in {seconds:.1f} s "
        f"(bar: {BAR_SECONDS} s)"
    )

    row_of = {int(i): r for r, i in enumerate(vocab.item_ids)}
    appids = games.appid.to_numpy()
    with (EXPERIMENTS / "steam_labels.csv").open() as labels:
        labelled = list(csv.DictReader(labels))
    truth = [{int(a) for a in r["steam_appids"].split(";") if a} for r in labelled]
    rows = [row_of[int(r["item_id"])] for r in labelled]
    predicted = [int(appids[matches.game_row[r]]) for r in rows]
    score = np.array([matches.score[r] for r in rows])
    exact = np.array([matches.kind[r] == "exact" for r in rows])
    positives = sum(1 for t in truth if t)
    print(f"labelled sample: {len(labelled)} items, {positives} with a Steam game")
    print("| threshold | matched | precision | recall | F1 |")
    print("|---|---|---|---|---|")
    by_threshold = []
    for threshold in THRESHOLDS:
        accepted = exact | (score >= threshold)
        correct = sum(1 for a, p, t in zip(accepted, predicted, truth, strict=True) if a and p in t)
        precision = correct / max(1, accepted.sum())
        recall = correct / positives
        f1 = 2 * precision * recall / max(1e-9, precision + recall)
        print(f"| {threshold:.2f} | {accepted.sum()} | {precision:.3f} | {recall:.3f} | {f1:.3f} |")
        by_threshold.append(
            AtThreshold(
                threshold=threshold,
                matched=int(accepted.sum()),
                precision=float(precision),
                recall=recall,
                f1=float(f1),
            )
        )
    from recsys_pipeline.enrichment.steam import SteamMatchSettings

    chosen = SteamMatchSettings().threshold
    share = float(((matches.kind == "exact") | (matches.score >= chosen)).mean())
    print(f"whole catalog matched at the default threshold {chosen}: {share:.1%}")
    measured = Measurement(
        items=len(titles),
        games=len(games),
        seconds=seconds,
        labelled=len(labelled),
        positives=positives,
        default_threshold=chosen,
        catalog_share=share,
        by_threshold=by_threshold,
    )
    command = command_line("experiments.steam_matching", argv)
    save_result(args.cache, command, cache_rows(measured), notes=cache_notes(measured))
    print(f"kept in {args.cache}")


if __name__ == "__main__":
    main()
