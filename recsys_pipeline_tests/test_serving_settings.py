"""The service's environment (HOST, PORT, RECSYS_SERVE_*), read in settings.py only."""

from __future__ import annotations

import pytest

from recsys_pipeline.settings import ServingSettings, load_serving_settings
from recsys_pipeline_tests.conftest import REPO

VARIABLES = (
    "HOST",
    "PORT",
    "RECSYS_SERVE_POLL_SECONDS",
    "RECSYS_SERVE_THREADS",
    "RECSYS_SERVE_BATCH_WAIT_MS",
)


def test_the_defaults_bind_to_this_machine_only_and_empty_values_count_as_unset():
    expected = ServingSettings(
        host="127.0.0.1", port=8000, poll_seconds=5.0, threads=1, batch_wait_ms=2.0
    )
    assert load_serving_settings({}) == expected
    assert load_serving_settings(dict.fromkeys(VARIABLES, "")) == expected


def test_every_variable_is_read():
    env = {
        "HOST": "0.0.0.0",
        "PORT": "9000",
        "RECSYS_SERVE_POLL_SECONDS": "0.5",
        "RECSYS_SERVE_THREADS": "4",
        "RECSYS_SERVE_BATCH_WAIT_MS": "0",
    }
    assert load_serving_settings(env) == ServingSettings(
        host="0.0.0.0", port=9000, poll_seconds=0.5, threads=4, batch_wait_ms=0.0
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT='http' is not an integer"),
        ("PORT", "0", "PORT=0: use a TCP port"),
        ("PORT", "65536", "PORT=65536: use a TCP port"),
        ("RECSYS_SERVE_POLL_SECONDS", "soon", "'soon' is not a number"),
        ("RECSYS_SERVE_POLL_SECONDS", "0", "RECSYS_SERVE_POLL_SECONDS=0.0: use"),
        ("RECSYS_SERVE_POLL_SECONDS", "nan", "RECSYS_SERVE_POLL_SECONDS=nan: use"),
        ("RECSYS_SERVE_POLL_SECONDS", "inf", "RECSYS_SERVE_POLL_SECONDS=inf: use"),
        ("RECSYS_SERVE_THREADS", "1.5", "RECSYS_SERVE_THREADS='1.5' is not an integer"),
        ("RECSYS_SERVE_THREADS", "0", "RECSYS_SERVE_THREADS=0: use 1 or more"),
        ("RECSYS_SERVE_BATCH_WAIT_MS", "-1", "RECSYS_SERVE_BATCH_WAIT_MS=-1.0: use"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_variable(name, value, message):
    with pytest.raises(ValueError, match=message):
        load_serving_settings({name: value})


def test_the_service_reads_no_environment_of_its_own():
    for path in (REPO / "recsys_pipeline" / "serving").glob("*.py"):
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, path.name
