"""Contracts: what this project relies on in other libraries' private or beta APIs, asserted
exactly, one test per API. An upgrade that changes one fails here, naming the library, its
installed version and what changed, rather than somewhere downstream or silently."""

from __future__ import annotations

import copy
import inspect
import warnings
from importlib.metadata import version

import dagster as dg
import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from recsys_pipeline.data.vocab import ItemVocab
from recsys_pipeline.models.modeling_sasrec import SASRecForCausalLM
from recsys_pipeline.training.dpo import build_trainer, pairs_dataset
from recsys_pipeline.training.negatives import MiningSettings
from recsys_pipeline.training.pairs import build_pairs
from recsys_pipeline.training.settings import DPOSettings, SFTSettings
from recsys_pipeline_tests.helpers import stale_statuses
from recsys_pipeline_tests.test_preference import random_split


def changed(library: str, what: str) -> str:
    return f"{library} {version(library)} changed what this project relies on: {what}"


# --- TRL: training/dpo.py's ItemDPOTrainer -------------------------------------------------------


def dpo_trainer(tmp_path, n_items: int, seed: int = 0):
    """dpo.py's own trainer over random pairs of an ``n_items`` catalog, without dropout (two
    calls on one batch must see the same network)."""
    vocab = ItemVocab(item_ids=np.arange(1, n_items + 1))
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n_items, 8)).astype(np.float32)
    split = random_split()
    pairs = build_pairs(split, vocab, vectors, 9, MiningSettings())
    settings = SFTSettings(
        hidden_size=16, intermediate_size=32, hidden_dropout=0.0, attention_dropout=0.0
    )
    torch.manual_seed(seed)
    model = SASRecForCausalLM(settings.sasrec_config(vocab)).train()
    trainer = build_trainer(
        model, copy.deepcopy(model), pairs, vocab, DPOSettings(batch_size=16), tmp_path
    )
    return trainer, pairs, vocab


def test_trl_dpo_prepare_dataset_is_where_the_token_ids_go_in(tmp_path):
    """ItemDPOTrainer overrides the private DPOTrainer._prepare_dataset to hand TRL token ids."""
    from trl import DPOTrainer

    parameters = list(inspect.signature(DPOTrainer._prepare_dataset).parameters)
    assert parameters == ["self", "dataset", "processing_class", "args", "dataset_name"], changed(
        "trl", f"DPOTrainer._prepare_dataset takes {parameters}"
    )
    trainer, pairs, vocab = dpo_trainer(tmp_path, n_items=36)
    given = pairs_dataset(pairs, vocab)
    assert trainer.train_dataset.to_dict() == given.to_dict(), changed(
        "trl", "DPOTrainer.__init__ no longer passes the train dataset through _prepare_dataset"
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert vocab.eos_token_id not in batch["input_ids"], changed("trl", "the collator adds EOS")
    assert batch["completion_mask"].sum(dim=1).tolist() == [1] * len(batch["input_ids"]), changed(
        "trl", "the collator no longer trains on prompt_ids + chosen_ids / rejected_ids as given"
    )
    # the override is still needed: TRL's own preparation cannot take token ids
    try:
        prepared = DPOTrainer._prepare_dataset(
            trainer, given, trainer.processing_class, trainer.args, "train"
        )
    except KeyError:
        return
    pytest.fail(
        changed(
            "trl",
            f"DPOTrainer prepares a token-id dataset itself now (first row {prepared[0]}): "
            "drop the _prepare_dataset override in training/dpo.py if it keeps them as given",
        )
    )


def test_trl_use_triton_decides_which_positions_the_fused_head_scores(tmp_path):
    """ItemDPOTrainer.compute_loss patches the private trl.trainer.utils._use_triton to True:
    the fused LM head then scores the labelled positions only on CPU, same loss, far less work."""
    from trl import DPOTrainer
    from trl.trainer import utils as trl_utils

    assert callable(getattr(trl_utils, "_use_triton", None)), changed(
        "trl", "trl.trainer.utils._use_triton is gone (the fused head's choice moved)"
    )
    assert trl_utils._use_triton(torch.device("cpu")) is False, changed(
        "trl", "the fused head scores only labelled positions on CPU by itself: drop the patch"
    )
    # a catalog wide enough that the head's work dominates the count
    trainer, _, _ = dpo_trainer(tmp_path, n_items=20_000)
    batch = next(iter(trainer.get_train_dataloader()))
    losses, flops = [], []
    for compute_loss in (trainer.compute_loss, DPOTrainer.compute_loss.__get__(trainer)):
        with FlopCounterMode(display=False) as counter:
            losses.append(compute_loss(trainer.model, batch).detach())
        flops.append(counter.get_total_flops())
    patched, stock = losses
    assert torch.allclose(patched, stock, rtol=1e-5, atol=1e-6), changed(
        "trl", f"the patched fused head gives another loss ({patched} against {stock})"
    )
    assert flops[1] > 3 * flops[0], changed(
        "trl", f"patching _use_triton no longer narrows the head's work (FLOPs {flops})"
    )


# --- Dagster: the observed files and the stale statuses -------------------------------------------


class Reading(dg.ConfigurableResource):
    value: str


def observed(**spec: object) -> dg.AssetsDefinition:
    @dg.multi_observable_source_asset(specs=[dg.AssetSpec("file", **spec)])
    def file(reading: Reading) -> dg.ObserveResult:
        return dg.ObserveResult(data_version=dg.DataVersion(reading.value), metadata={"n": 1})

    return file


def observe(source: dg.AssetsDefinition, value: str, instance: dg.DagsterInstance) -> None:
    """What helpers.observe_sources does: a run of the observable asset."""
    result = dg.materialize(
        [source], selection=[source], resources={"reading": Reading(value=value)}, instance=instance
    )
    assert result.success and not result.get_asset_materialization_events(), changed(
        "dagster", "a run of an observable asset does more than observe it"
    )


def test_dagster_multi_observable_source_asset_observes_data_versions(instance):
    """The beta decorator of assets/raw_csv.py's input_file and steam_enrichment.py's
    steam_file (allow-listed in pyproject.toml while it warns)."""
    label = "every minute"
    condition = dg.AutomationCondition.cron_tick_passed("* * * * *").with_label(label)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = observed(group_name="data", automation_condition=condition)
    beta = [w for w in caught if issubclass(w.category, dg.BetaWarning)]
    assert beta, changed(
        "dagster",
        "multi_observable_source_asset is no longer beta: drop its pyproject.toml filter",
    )
    assert isinstance(source, dg.AssetsDefinition), changed("dagster", f"it built {source!r}")
    # the tests and bench/incremental.py tell the files from the built assets by this
    assert source.is_observable and not source.is_materializable, changed(
        "dagster", "an observable source asset is materializable, or not observable"
    )
    (spec,) = source.specs
    assert spec.group_name == "data" and spec.automation_condition.get_label() == label, changed(
        "dagster", "the AssetSpec's group or automation condition is not kept"
    )
    assert "reading" in source.required_resource_keys, changed(
        "dagster", "resources are no longer taken from the function's parameters"
    )
    observe(source, "v1", instance)
    (record,) = instance.fetch_observations(dg.AssetKey("file"), limit=2).records
    assert record.asset_observation.data_version == "v1", changed(
        "dagster", "the observation does not carry the returned data version"
    )
    assert record.asset_observation.metadata["n"].value == 1, changed(
        "dagster", "the observation does not carry the returned metadata"
    )


def test_dagster_stale_status_resolver_follows_data_and_code_versions(instance):
    """helpers.stale_statuses, on Dagster's own test helper get_stale_status_resolver
    (test_automation.py, test_code_versions.py, bench/incremental.py): a change is stale one
    edge at a time, MISSING before a first run."""
    try:
        from dagster._utils.test.data_versions import get_stale_status_resolver
    except ImportError as error:
        pytest.fail(changed("dagster", f"get_stale_status_resolver cannot be imported: {error}"))
    parameters = list(inspect.signature(get_stale_status_resolver).parameters)
    assert parameters == ["instance", "assets"], changed(
        "dagster", f"get_stale_status_resolver takes {parameters}"
    )

    source = observed()

    def graph(reader_version: str) -> dg.Definitions:
        @dg.asset(deps=[source], code_version=reader_version)
        def reader() -> None:
            """Reads the observed file."""

        @dg.asset(deps=[reader], code_version="1")
        def downstream() -> None:
            """Reads the reader."""

        return dg.Definitions(assets=[source, reader, downstream])

    def run(definitions: dg.Definitions, *names: str) -> None:
        resources = {"reading": Reading(value="unread")}  # the file is not observed here
        result = dg.materialize(
            definitions.assets, selection=list(names), resources=resources, instance=instance
        )
        assert result.success

    def expect(definitions: dg.Definitions, reader: str, downstream: str, after: str) -> None:
        found = stale_statuses(definitions, instance)
        assert found == {"reader": reader, "downstream": downstream}, changed(
            "dagster", f"after {after}: {found}"
        )

    first = graph("1")
    expect(first, "MISSING", "MISSING", "nothing was run")
    observe(source, "v1", instance)
    run(first, "reader", "downstream")
    expect(first, "FRESH", "FRESH", "both were built")
    observe(source, "v1", instance)
    expect(first, "FRESH", "FRESH", "the same version was observed again")
    observe(source, "v2", instance)
    expect(first, "STALE", "FRESH", "a new version was observed")
    run(first, "reader")
    expect(first, "FRESH", "STALE", "the reader was rebuilt")
    run(first, "downstream")
    # new code for the reader: the reader is stale, the downstream only once it is rebuilt
    expect(graph("2"), "STALE", "FRESH", "the reader's code version changed")


# --- torch: models/fused_loss.py -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_private_softmax_writes_the_softmax_into_its_out_buffer(dtype):
    """The fused loss's hot loop writes each chunk's softmax into a preallocated buffer through
    torch._softmax(x, dim, half_to_float=False, out=...): the public softmax takes no out=."""
    logits = torch.randn(4, 33).to(dtype)
    buffer = torch.empty_like(logits)
    returned = torch._softmax(logits, 1, False, out=buffer)
    expected = torch.softmax(logits.float(), 1).to(dtype)
    assert returned.data_ptr() == buffer.data_ptr(), changed("torch", "_softmax's out= buffer")
    assert torch.allclose(buffer.float(), expected.float(), atol=1e-2), changed(
        "torch", "what _softmax computes"
    )


# --- transformers: models/modeling_sasrec.py -----------------------------------------------------


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_transformers_attention_choice_is_config_attn_implementation(implementation):
    """The model picks its attention function as transformers' own models do:
    ALL_ATTENTION_FUNCTIONS[config._attn_implementation] (eager: the model's own function)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    config = AutoConfig.for_model(
        "sasrec", vocab_size=20, hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    )
    model = AutoModelForCausalLM.from_config(config, attn_implementation=implementation)
    assert model.config._attn_implementation == implementation, changed(
        "transformers", "where the chosen attention implementation is kept"
    )
    assert implementation == "eager" or implementation in ALL_ATTENTION_FUNCTIONS, changed(
        "transformers", "the registry of attention functions"
    )
