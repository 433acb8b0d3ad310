from __future__ import annotations

import numpy as np
import pytest

from recsys_pipeline.data.histories import Histories
from recsys_pipeline.data.split import Split
from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.enrichment.text_vectors import (
    SOURCE_NEIGHBOURS,
    SOURCE_RANDOM,
    SOURCE_TEXT,
    fill_from_neighbours,
    fit_dimensions,
    is_placeholder,
    profile_texts,
    read_vectors,
    write_vectors,
)


def test_placeholders():
    for text in ["", "  ", "Unknown", "N/A", "nan", "item 42", "???", None]:
        assert is_placeholder(text), text
    for text in ["Halo 3", "Item Box for DS", "NaN Racer"]:
        assert not is_placeholder(text), text


def test_profile_texts_leave_items_without_a_title_to_their_neighbours():
    profiles = ["Item Title: Halo 3; Genres: Shooter", "Item Title: Unknown; Platform: PC"]
    assert profile_texts(["Halo 3", "Unknown"], profiles) == [profiles[0], ""]


def test_neighbour_fill_uses_training_parts_only():
    # items 1..6; item 5 has no title and co-occurs with 1 and 2 in training parts;
    # item 6 has no title and appears ONLY as a test target: it must not borrow from anyone
    vocab = ItemVocab(item_ids=np.arange(1, 7))
    split = Split(
        full=Histories.from_lists(
            [0, 1, 2],
            [[1, 5, 2, 3, 4], [2, 5, 1, 3, 6], [1, 2, 3]],
        )
    )
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((6, 4)).astype(np.float32)
    known = np.array([True, True, True, True, False, False])
    filled = fill_from_neighbours(vectors, known, split.train, vocab)
    # user 0 train [1, 5, 2], user 1 train [2, 5, 1]: neighbours of 5 = 1, 2, 2, 1
    assert np.allclose(filled.vectors[4], (vectors[0] + vectors[1]) / 2, atol=1e-6)
    assert filled.source.tolist() == [SOURCE_TEXT] * 4 + [SOURCE_NEIGHBOURS, SOURCE_RANDOM]
    # the random row has the typical norm of the known rows, and is not a neighbour mean
    typical = np.linalg.norm(vectors[:4], axis=1).mean()
    assert np.linalg.norm(filled.vectors[5]) == pytest.approx(typical, rel=1e-5)
    assert not np.allclose(filled.vectors[5], vectors[2], atol=1e-3)


def test_pca_keeps_the_most_variance_and_reports_it():
    rng = np.random.default_rng(1)
    # 3 strong directions + noise in 10 dimensions
    basis = rng.standard_normal((3, 10))
    data = rng.standard_normal((500, 3)) * [10, 5, 3] @ basis + 0.01 * rng.standard_normal(
        (500, 10)
    )
    fitted = fit_dimensions(data.astype(np.float32), 3)
    assert fitted.vectors.shape == (500, 3)
    assert fitted.explained_variance > 0.999
    components = np.corrcoef(fitted.vectors.T)
    assert np.allclose(components, np.eye(3), atol=0.05)  # decorrelated components
    assert fit_dimensions(data.astype(np.float32), 1).explained_variance < 0.9


def test_tiny_catalog_and_growth():
    rng = np.random.default_rng(2)
    data = rng.standard_normal((5, 8)).astype(np.float32)
    small = fit_dimensions(data, 6)  # 5 items have at most 5 components: padded with zeros
    assert small.vectors.shape == (5, 6) and np.allclose(small.vectors[:, 5], 0)
    grown = fit_dimensions(data, 16)  # more dimensions than the text model: distances kept
    assert grown.vectors.shape == (5, 16)
    before = np.linalg.norm(data[0] - data[1])
    assert np.linalg.norm(grown.vectors[0] - grown.vectors[1]) == pytest.approx(before, rel=1e-5)


def test_vectors_for_another_catalog_are_rejected(tmp_path):
    vocab = ItemVocab(item_ids=np.arange(1, 5))
    write_vectors(tmp_path, np.zeros((4, 3), np.float32), vocab, np.array(["text"] * 4))
    assert read_vectors(tmp_path, vocab).shape == (4, 3)
    with pytest.raises(ValueError, match="4 rows for a catalog of 5 items"):
        read_vectors(tmp_path, ItemVocab(item_ids=np.arange(1, 6)))
