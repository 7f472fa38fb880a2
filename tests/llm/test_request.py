"""Request bodies: structured output is asked for in the dialect each server speaks."""

from __future__ import annotations

import pytest

from raysynth.llm.config import LocalBackend, OpenAIBackend, SamplingParams
from raysynth.llm.http import build_request

SCHEMA = {"type": "object", "properties": {"Disease": {"type": "array"}}}
ROW = {"messages": [{"role": "user", "content": "hi"}], "response_format": "json_schema"}


def test_openai_style_json_schema():
    backend = OpenAIBackend(base_url="https://api.example.com/v1", model="m")
    kind, body = build_request(ROW, backend, SamplingParams(json_schema=SCHEMA))
    assert kind == "chat"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
    }


def test_llama_cpp_python_gets_json_object_with_a_schema():
    backend = LocalBackend().endpoint("http://127.0.0.1:1/v1")
    _, body = build_request(ROW, backend, SamplingParams(json_schema=SCHEMA))
    assert body["response_format"] == {"type": "json_object", "schema": SCHEMA}


def test_rows_may_ask_for_plain_text_and_a_schema_is_required():
    backend = OpenAIBackend(base_url="https://api.example.com/v1", model="m")
    text_row = {**ROW, "response_format": "text"}
    sampling = SamplingParams(response_format="json_schema", json_schema=SCHEMA)
    assert "response_format" not in build_request(text_row, backend, sampling)[1]
    with pytest.raises(ValueError, match="json_schema"):
        SamplingParams(response_format="json_schema")
