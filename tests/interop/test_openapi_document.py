"""The committed OpenAPI document is a valid OpenAPI 3.1 description, per an independent
validator (openapi-spec-validator)."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_openapi_document_is_valid() -> None:
    spec = json.loads(DOCUMENT.read_text())
    assert spec["openapi"].startswith("3.1")
    validate(spec)
