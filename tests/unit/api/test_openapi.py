"""The OpenAPI document: every operation documents its errors with the one error schema."""

from __future__ import annotations

import pytest

from .conftest import Harness

pytestmark = pytest.mark.unit


def test_openapi_documents_auth_errors_and_examples(api: Harness) -> None:
    doc = api.app.openapi()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "Open311RequestIn" in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path != "/healthz":
                assert op.get("security") == [{"HTTPBearer": []}], (method, path)
                for status in ("401", "403"):
                    ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (method, path, status)
            if "422" in op["responses"]:
                ref = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (method, path)
    for name in (
        "CaseOut",
        "CaseListOut",
        "CaseDetailOut",
        "ErrorResponse",
        "DeviceOut",
        "GridOut",
        "Open311Request",
        "Open311Service",
        "TransitionRequest",
        "Open311RequestIn",
    ):
        assert doc["components"]["schemas"][name].get("examples"), name
