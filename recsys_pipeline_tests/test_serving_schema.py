"""The online API against its own OpenAPI schema (schemathesis), through the ASGI app on a tiny
graph built once for the module: inputs that fit the schema and inputs that do not, and for each
no 5xx, and the answer's status, content type and body as the schema declares them."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from recsys_pipeline.serving.app import create_app
from recsys_pipeline_tests.test_serving import served_graph

# Listed here, and checked against the schema, because the schema needs the built graph and so
# exists only once the tests run (schemathesis's from_fixture, which would list them itself,
# fails under pytest 9: it reads Node._nodeid).
OPERATIONS = [
    "POST /recommend",
    "POST /recommend/batch",
    "GET /items/{item_id}",
    "GET /health",
    "GET /metrics",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    root = served_graph(tmp_path_factory.mktemp("schema"))
    app = create_app(root / "data" / "artifacts", poll=False)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_of_the_schema_is_tested(api_schema):
    assert sorted(op.ok().label for op in api_schema.get_all_operations()) == sorted(OPERATIONS)


# only the POST bodies can be invalid: an item_id is any string, /health and /metrics take nothing
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in OPERATIONS if label.startswith("POST")
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_every_operation_answers_as_its_schema_declares(api_schema, label, mode):
    method, path = label.split(" ")
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(mode))
    # the same examples every run (a failure reproduces); ~1.5 s an operation on two slow cores
    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    def answers(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    answers()
