from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg

from recsys_pipeline.definitions import defs
from recsys_pipeline_tests.conftest import REPO

FIXED_KEYS = {
    "raw_csv",
    "sequences",
    "tokenizer",
    "steam_enrichment",
    "wiki_enrichment",
    "item_embeddings",
    "sft_checkpoint",
    "dpo_pairs",
    "dpo_checkpoint",
    "served_model",
    "faiss_index",
    "predictions",
    "evaluation",
}
TRAINING = {"item_embeddings", "sft_checkpoint", "dpo_checkpoint"}


def test_defs_has_the_fixed_asset_keys():
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert keys >= FIXED_KEYS


def test_training_assets_are_gpu_tagged_and_pooled():
    for assets_def in defs.assets:
        if not isinstance(assets_def, dg.AssetsDefinition):
            continue  # the observed source files
        for key in assets_def.keys:
            name = key.to_user_string()
            tagged = assets_def.op.tags.get("gpu") == "true"
            assert tagged == (name in TRAINING), name
            if name in TRAINING:
                assert assets_def.op.pool == "gpu"


def test_defs_load_without_torch_transformers_or_faiss():
    """Loading the code location (every `dagster` command, every UI reload) imports none of the
    heavy libraries: their import is what made it slow. How fast it loads is bench/ material."""
    code = (
        "import json, sys;"
        "from recsys_pipeline.definitions import defs; defs.resolve_all_asset_keys();"
        "print(json.dumps([m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss',"
        " 'trl', 'datasets', 'matplotlib') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RECSYS_DATA_DIR": "/nonexistent"},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_workspace_and_pyproject_point_at_the_definitions():
    assert "module_name: recsys_pipeline.definitions" in (REPO / "workspace.yaml").read_text()
    assert 'module_name = "recsys_pipeline.definitions"' in (REPO / "pyproject.toml").read_text()
