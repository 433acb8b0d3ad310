"""tokenizer: one token per item id, saved as a Hugging Face tokenizer with the catalog beside it."""

import dagster as dg
import numpy as np

from recsys_pipeline.data.input_csv import read_catalog
from recsys_pipeline.data.split import read_split
from recsys_pipeline.data.vocab import ItemVocab, load_vocab, save_vocab
from recsys_pipeline.resources import RecsysStorage
from recsys_pipeline.settings import Settings


@dg.asset(group_name="data", kinds={"huggingface"}, deps=["raw_csv"])
def tokenizer(storage: RecsysStorage) -> dg.MaterializeResult:
    """Item-level WordLevel tokenizer: PAD=0, one token per item id (ascending), UNK, BOS, EOS."""
    artifacts = storage.artifacts()
    item_ids, titles = read_catalog(artifacts.path("raw_csv"))
    vocab = ItemVocab(item_ids=item_ids)
    with artifacts.writing("tokenizer") as folder:
        save_vocab(vocab, titles, folder)
    return dg.MaterializeResult(
        metadata={
            "items": vocab.n_items,
            "vocab_size": vocab.vocab_size,
            "pad_token_id": vocab.pad_token_id,
            "unk_token_id": vocab.unk_token_id,
            "bos_token_id": vocab.bos_token_id,
            "eos_token_id": vocab.eos_token_id,
            "item_ids_are_token_ids": bool(np.array_equal(item_ids, vocab.item_token_ids)),
            "distinct_titles": len(set(titles)),
        }
    )


@dg.asset_check(asset=tokenizer, blocking=True, additional_deps=["sequences"])
def tokenizer_covers_sequences(storage: RecsysStorage) -> dg.AssetCheckResult:
    """Every item id in the split (training parts and targets) has its own token."""
    artifacts = storage.artifacts()
    vocab = load_vocab(artifacts.path("tokenizer"))
    split = read_split(artifacts.path("sequences"))
    ids = np.unique(split.full.items)  # training parts and both targets
    missing = ids[~vocab.contains(ids)]
    return dg.AssetCheckResult(
        passed=len(missing) == 0,
        metadata={"distinct_ids_in_split": len(ids), "missing": missing[:20].tolist()},
    )


def definitions(_settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=[tokenizer], asset_checks=[tokenizer_covers_sequences])
