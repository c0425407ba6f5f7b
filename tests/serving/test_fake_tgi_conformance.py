"""The fake TGI conforms to TGI's OpenAPI spec: schemathesis generates requests from the spec,
sends them to the fake on 127.0.0.1, and checks the status codes, content types and bodies
of the responses.

Only the routes that the fake implements are tested. Two gaps of schemathesis 4.32 with this
spec are worked around:

- It cannot generate `GenerateRequest` bodies (the spec gives `exclusiveMinimum` as a number,
  which OpenAPI 3.0 defines as a boolean), so /tokenize gets bodies drawn from text here.
- It validates each SSE event object (`{"data": ..., "event": ...}`) against the schema,
  while TGI's spec describes the JSON inside `data`. For the chat route its body check is
  left out, and the fake's teardown check (conftest.py) validates every `data` payload that
  it streamed, error events included, against the spec with jsonschema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.timeout(120)

# The spec that the fake follows, kept next to conftest.py.
SCHEMA = schemathesis.openapi.from_path(Path(__file__).with_name("tgi-openapi.json"))
ALL_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
STREAM_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]

# Each row: a route that the fake implements (method, path), whether schemathesis generates
# its request body, and the checks that apply.
FAKE_ROUTES = [
    # Served model info, TGI's single-object form.
    ("GET", "/v1/models", True, ALL_CHECKS),
    # Token limits.
    ("GET", "/info", True, ALL_CHECKS),
    # Readiness.
    ("GET", "/health", True, ALL_CHECKS),
    # Token counts of a raw input: bodies drawn here (see the module docstring).
    ("POST", "/tokenize", False, ALL_CHECKS),
    # Token counts of a templated chat.
    ("POST", "/chat_tokenize", True, ALL_CHECKS),
    # The streamed chat route: SSE payloads are checked at teardown.
    ("POST", "/v1/chat/completions", True, STREAM_CHECKS),
]


@pytest.mark.parametrize(("method", "path", "generated_body", "checks"), FAKE_ROUTES)
def test_fake_route_conforms_to_spec(fake_tgi, method: str, path: str, generated_body: bool, checks: list) -> None:
    operation = SCHEMA[path][method]

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        if generated_body:
            strategy = operation.as_strategy()
        else:
            strategy = operation.as_strategy(body={"inputs": data.draw(st.text(max_size=200)), "parameters": {}})
        case = data.draw(strategy)
        case.call_and_validate(base_url=fake_tgi.root_url, checks=checks, timeout=10)

    check()

    assert any(request.path == path for request in fake_tgi.requests)
