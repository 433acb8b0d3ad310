"""tokenizer: one token per item id, saved as a Hugging Face tokenizer with the catalog beside it."""

import hashlib

import dagster as dg
import numpy as np

from recsys_pipeline.assets.versions import content_version, published, reading
from recsys_pipeline.automation import ON_UPSTREAM_CHANGE
from recsys_pipeline.data.input_formats import read_catalog
from recsys_pipeline.data.split import read_split
from recsys_pipeline.data.vocab import ItemVocab, load_vocab, save_vocab
from recsys_pipeline.resources.storage import RecsysStorage
from recsys_pipeline.settings import Settings


# After sequences, as in the design's graph: its check reads the split, which every selection
# that builds the tokenizer (`*steam_enrichment` too) must then build first.
@dg.asset(
    group_name="data",
    kinds={"huggingface"},
    deps=["raw_csv", "sequences"],
    automation_condition=ON_UPSTREAM_CHANGE,
)
def tokenizer(context: dg.AssetExecutionContext, storage: RecsysStorage) -> dg.MaterializeResult:
    """Item-level WordLevel tokenizer: PAD=0, one token per item id (ascending), UNK, BOS, EOS."""
    store = storage.artifacts()
    with reading(context, storage, "raw_csv") as inputs:
        item_ids, titles = read_catalog(inputs["raw_csv"])
    vocab = ItemVocab(item_ids=item_ids)
    with store.writing("tokenizer") as folder:
        save_vocab(vocab, titles, folder)
    # the catalog's content, not the input's version: a new user who buys known items leaves
    # the tokenizer, and the enrichment that reads only it, as they were
    catalog = hashlib.sha256("\x00".join(map(str, item_ids.tolist())).encode())
    catalog.update("\x00".join(titles).encode())
    return published(
        context,
        store,
        content_version(context, catalog.hexdigest()),
        {
            "items": vocab.n_items,
            "vocab_size": vocab.vocab_size,
            "pad_token_id": vocab.pad_token_id,
            "unk_token_id": vocab.unk_token_id,
            "bos_token_id": vocab.bos_token_id,
            "eos_token_id": vocab.eos_token_id,
            "item_ids_are_token_ids": bool(np.array_equal(item_ids, vocab.item_token_ids)),
            "distinct_titles": len(set(titles)),
        },
    )


@dg.asset_check(asset=tokenizer, blocking=True)
def tokenizer_covers_sequences(
    context: dg.AssetCheckExecutionContext, storage: RecsysStorage
) -> dg.AssetCheckResult:
    """Every item id in the split (training parts and targets) has its own token."""
    with reading(context, storage, "tokenizer", "sequences") as inputs:
        vocab = load_vocab(inputs["tokenizer"])
        split = read_split(inputs["sequences"])
    ids = np.unique(split.full.items)  # training parts and both targets
    missing = ids[~vocab.contains(ids)]
    return dg.AssetCheckResult(
        passed=len(missing) == 0,
        metadata={"distinct_ids_in_split": len(ids), "missing": missing[:20].tolist()},
    )


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[tokenizer], asset_checks=[tokenizer_covers_sequences])
