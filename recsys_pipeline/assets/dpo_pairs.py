"""dpo_pairs: preference pairs for DPO, with negatives mined by similarity of the SFT model's
item vectors."""

import dagster as dg
import numpy as np

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.failures import failing_clearly, load_model
from recsys_pipeline.assets.metadata import markdown_table
from recsys_pipeline.assets.versions import data_version, published, reading
from recsys_pipeline.automation import FOLLOW_SFT
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings
from recsys_pipeline.training.negatives import EASY, HARD, RANDOM, MiningSettings

EXAMPLES_SHOWN = 5

DPOPairsConfig = config_from_settings(
    "DPOPairsConfig", MiningSettings(), "How negatives are mined for the preference pairs."
)


@dg.asset(
    group_name="preference",
    kinds={"parquet", "faiss"},
    deps=["sft_checkpoint", "sequences", "tokenizer"],
    automation_condition=FOLLOW_SFT,
)
def dpo_pairs(
    context: dg.AssetExecutionContext, config: DPOPairsConfig, storage: RecsysStorage
) -> dg.MaterializeResult:
    """Per training user: prompt = history before the last training item, chosen = that item,
    rejected = a negative mined by cosine similarity over the SFT item embeddings."""
    from recsys_pipeline.data.split import read_split
    from recsys_pipeline.data.vocab import load_titles, load_vocab
    from recsys_pipeline.ranking.scoring import item_output_vectors
    from recsys_pipeline.training.pairs import build_pairs, write_pairs

    with failing_clearly(ValueError):
        mining = config.settings()
    store = storage.artifacts()
    with reading(context, storage, "sft_checkpoint", "sequences", "tokenizer") as inputs:
        vocab = load_vocab(inputs["tokenizer"])
        titles = load_titles(inputs["tokenizer"])
        split = read_split(inputs["sequences"])
        model = load_model(inputs["sft_checkpoint"])
    vectors = item_output_vectors(model, vocab).numpy()
    pairs = build_pairs(split, vocab, vectors, model.config.max_history_length, mining)
    with store.writing("dpo_pairs") as folder:
        write_pairs(pairs, folder)

    title_of = dict(zip(vocab.item_ids.tolist(), titles, strict=True))
    shown = min(EXAMPLES_SHOWN, len(pairs))
    chosen, rejected = pairs.chosen[:shown].tolist(), pairs.rejected[:shown].tolist()
    examples = [
        (
            " → ".join(title_of[i] for i in pairs.prompts[r].tolist()[-3:]),
            title_of[chosen[r]],
            f"{title_of[rejected[r]]} ({pairs.kind[r]})",
        )
        for r in range(shown)
    ]
    shares = {
        kind: float((pairs.kind == kind).mean()) if len(pairs) else 0.0
        for kind in (HARD, EASY, RANDOM)
    }
    context.log.info(f"{len(pairs)} pairs; negative kinds {shares}")
    return published(
        context,
        store,
        data_version(context, inputs, mining.model_dump()),
        {
            "dagster/row_count": len(pairs),
            "pairs": len(pairs),
            "users": len(np.unique(pairs.user_ids)),
            **{f"{kind}_share": share for kind, share in shares.items()},
            "examples": markdown_table(["prompt (last 3)", "chosen", "rejected"], examples),
        },
    )


@dg.asset_check(asset=dpo_pairs, blocking=True, additional_deps=["tokenizer"])
def pairs_are_valid(
    context: dg.AssetCheckExecutionContext, storage: RecsysStorage
) -> dg.AssetCheckResult:
    """Rejected never equals chosen; every id is in the vocabulary (read_pairs validates)."""
    from recsys_pipeline.data.vocab import load_vocab
    from recsys_pipeline.training.pairs import PairsFileError, read_pairs

    try:
        with reading(context, storage, "dpo_pairs", "tokenizer") as inputs:
            pairs = read_pairs(inputs["dpo_pairs"], load_vocab(inputs["tokenizer"]))
    except PairsFileError as exc:
        return dg.AssetCheckResult(passed=False, metadata={"error": str(exc)})
    return dg.AssetCheckResult(passed=True, metadata={"pairs": len(pairs)})


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[dpo_pairs], asset_checks=[pairs_are_valid])
