from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer

from recsys_pipeline.data.vocab import ItemVocab, load_titles, load_vocab, save_vocab


def test_token_ids_follow_sorted_item_ids_and_specials_come_last():
    vocab = ItemVocab(item_ids=np.array([3, 10, 42]))
    assert vocab.pad_token_id == 0
    assert vocab.encode(np.array([42, 3, 10, 7])).tolist() == [3, 1, 2, vocab.unk_token_id]
    assert (vocab.unk_token_id, vocab.bos_token_id, vocab.eos_token_id) == (4, 5, 6)
    assert vocab.vocab_size == 7
    assert vocab.decode(np.array([1, 3])).tolist() == [3, 42]
    with pytest.raises(ValueError, match="not an item"):
        vocab.decode(np.array([5]))


def test_rejects_unsorted_or_non_positive_ids():
    for bad in ([2, 1], [0, 1], [1, 1]):
        with pytest.raises(ValueError):
            ItemVocab(item_ids=np.array(bad))


def test_saved_tokenizer_loads_with_auto_tokenizer(tmp_path):
    vocab = ItemVocab(item_ids=np.arange(1, 101))
    save_vocab(vocab, [f"title {i}" for i in range(1, 101)], tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tok) == vocab.vocab_size
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (
        0,
        101,
        102,
        103,
    )
    # BOS first, one token per item, unknown ids -> UNK; spacing does not matter
    assert tok("<5><17> <100><999>")["input_ids"] == [102, 5, 17, 100, 101]
    assert tok.decode([5, 17]).replace(" ", "") == "<5><17>"
    assert load_vocab(tmp_path).n_items == 100 and load_titles(tmp_path)[4] == "title 5"


def test_distinct_ids_with_the_same_title_get_distinct_tokens(tmp_path):
    vocab = ItemVocab(item_ids=np.array([1, 2]))
    save_vocab(vocab, ["Same", "Same"], tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok("<1><2>", add_special_tokens=False)["input_ids"] == [1, 2]


@pytest.mark.parametrize(
    ("item_ids", "unknown"), [([3, 10, 42], 7), (["B01", "B07", "X9"], "B02")], ids=["int", "str"]
)
def test_columns_tokens_and_item_ids_convert_both_ways(item_ids, unknown):
    vocab = ItemVocab(item_ids=np.array(item_ids))
    columns = np.arange(vocab.n_items)
    tokens = vocab.tokens_of_columns(columns)
    assert tokens.tolist() == vocab.item_token_ids.tolist() == [1, 2, 3]
    assert vocab.columns_of_tokens(tokens).tolist() == columns.tolist()
    assert vocab.items_of_columns(columns).tolist() == item_ids
    assert vocab.columns_of_items(np.array(item_ids[::-1])).tolist() == [2, 1, 0]
    assert vocab.encode(vocab.items_of_columns(columns)).tolist() == tokens.tolist()
    assert (
        vocab.decode(vocab.tokens_of_columns(vocab.columns_of_items(np.array(item_ids)))).tolist()
        == item_ids
    )
    # the item tokens of a vocabulary-wide axis are the item columns, in order
    assert np.arange(vocab.vocab_size)[vocab.item_token_slice].tolist() == tokens.tolist()
    assert vocab.columns_of_tokens(np.array([vocab.pad_token_id])).tolist() == [-1]
    # an id outside the catalog: one past the last column (UNK's), never another item's
    assert vocab.columns_of_items(np.array([unknown, item_ids[0]])).tolist() == [3, 0]
    for column in (-1, vocab.n_items):
        with pytest.raises(ValueError, match="not an item"):
            vocab.items_of_columns(np.array([column]))
