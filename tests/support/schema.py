"""The JSON Schema of the result (`xivo-doctor/1`) as the package ships it, for the tests that
validate documents against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import xivo_doctor

SCHEMA_FILE = Path(xivo_doctor.__file__).resolve().parent / "result-schema.json"


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
