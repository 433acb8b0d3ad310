"""report_to, the training settings' experiment tracker: validation, the launchpad config made
from it, and where the tracker's run is said to be."""

from __future__ import annotations

import importlib.util
import sys
from types import SimpleNamespace

import pytest

from recsys_pipeline.assets.config import config_from_settings
from recsys_pipeline.assets.sft_checkpoint import tracking_metadata
from recsys_pipeline.training.settings import DPOSettings, SFTSettings
from recsys_pipeline.training.tracking import tracker_run

MISSING = "report_to='mlflow' needs the mlflow package, which is not installed"


def mlflow_installed(monkeypatch, installed: bool) -> None:
    """find_spec answers for mlflow as if it were (not) installed, whatever this machine has."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name == "mlflow":
            return SimpleNamespace(name="mlflow") if installed else None
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize("settings", [SFTSettings, DPOSettings])
def test_report_to_is_tensorboard_unless_told(settings):
    assert settings().report_to == "tensorboard"
    assert settings(report_to="none").report_to == "none"
    with pytest.raises(ValueError, match="Input should be 'tensorboard', 'mlflow' or 'none'"):
        settings(report_to="wandb")


@pytest.mark.parametrize("settings", [SFTSettings, DPOSettings])
def test_mlflow_is_taken_only_where_it_is_installed(settings, monkeypatch):
    mlflow_installed(monkeypatch, False)
    with pytest.raises(ValueError, match=MISSING):
        settings(report_to="mlflow")
    mlflow_installed(monkeypatch, True)
    assert settings(report_to="mlflow").report_to == "mlflow"


def test_the_launchpad_config_validates_report_to_as_the_settings_do(monkeypatch):
    config = config_from_settings("SFTConfig", SFTSettings(report_to="none"), "test")
    assert config().settings().report_to == "none"  # the profile's value is the default
    assert config(report_to="tensorboard").settings().report_to == "tensorboard"
    mlflow_installed(monkeypatch, False)
    with pytest.raises(ValueError, match=MISSING):
        config(report_to="mlflow")


def test_the_mlflow_run_is_the_last_one_this_process_logged(monkeypatch):
    run = SimpleNamespace(info=SimpleNamespace(run_id="4f1c0a"))
    fake = SimpleNamespace(
        last_active_run=lambda: run, get_tracking_uri=lambda: "http://mlflow:5000"
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    assert tracker_run("mlflow") == {"run_id": "4f1c0a", "tracking_uri": "http://mlflow:5000"}
    assert tracker_run("tensorboard") == tracker_run("none") == {}
    fake.last_active_run = lambda: None  # a torchrun rank that logged nothing
    assert tracker_run("mlflow") == {}


def test_tracking_metadata_names_the_event_files_and_the_runs(tmp_path):
    assert tracking_metadata(tmp_path, {}) == {}
    (tmp_path / "tensorboard").mkdir()
    runs = {"stage2": {"run_id": "4f1c0a", "tracking_uri": "http://mlflow:5000"}}
    metadata = tracking_metadata(tmp_path, runs)
    assert metadata["tensorboard_logdir"].value == str(tmp_path / "tensorboard")
    assert metadata["tracker_runs"].value == runs
