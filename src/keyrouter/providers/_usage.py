"""Usage readers: tokens by kind from each provider's responses, plain and streamed.

A `UsageReader` is fed the response's JSON objects: the whole body of a plain response, or
each server-sent event of a stream. It keeps the latest usage fields it saw (merged, so
Anthropic's `message_start` + cumulative `message_delta` and Gemini's per-chunk
`usageMetadata` both end with the final numbers) and the model the response names. Where a
stream carries no usage (OpenAI chat without `stream_options.include_usage`), `count_text`
measures the generated text so the call can still be estimated.

Field names per provider (see each function): OpenAI chat `usage.prompt_tokens`,
`completion_tokens`, `prompt_tokens_details.cached_tokens`, `completion_tokens_details.
reasoning_tokens`; Responses API `usage.input_tokens`, `output_tokens`, `input_tokens_details.
cached_tokens`, `output_tokens_details.reasoning_tokens` (streamed in `response.completed`);
Anthropic `usage.input_tokens`, `output_tokens`, `cache_read_input_tokens`,
`cache_creation_input_tokens`; Gemini `usageMetadata.promptTokenCount`,
`candidatesTokenCount`, `cachedContentTokenCount`, `thoughtsTokenCount`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from keyrouter.core.usage import Usage
from keyrouter.providers._estimate import CHARS_PER_TOKEN, json_object, output_cap

__all__ = ["UsageReader", "count_text", "output_allowance", "reader_for"]

_TEXT = re.compile(
    rb'"(?:content|text|delta|arguments|partial_json|thinking|refusal)"\s*:\s*"((?:[^"\\]|\\.)*)"'
)


def count_text(data: bytes) -> int:
    """Characters of generated text in a chunk of JSON, without parsing it (escapes count)."""
    return sum(len(m) for m in _TEXT.findall(data))


def output_allowance(body: bytes) -> float:
    """The output cap an OpenAI request's demand estimate included (so that an estimate of
    the prompt alone can take it back out)."""
    from keyrouter.providers.openai import _DEFAULT_OUTPUT_TOKENS, _OUTPUT_FIELDS

    parsed = json_object(body)
    if parsed is None:
        return 0.0
    choices = parsed.get("n")
    n = choices if isinstance(choices, int) and 1 <= choices <= 128 else 1
    return n * output_cap(parsed, _OUTPUT_FIELDS, _DEFAULT_OUTPUT_TOKENS)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _sub(obj: Mapping[str, object], name: str, field: str) -> int:
    inner = obj.get(name)
    return _int(inner.get(field)) if isinstance(inner, dict) else 0


Extract = Callable[[dict[str, object]], tuple[Mapping[str, object] | None, object]]
"""An object's usage fields (if any) and the model it names."""


class UsageReader:
    """Collects usage from a response's JSON objects (see the module docstring)."""

    __slots__ = ("_convert", "_extract", "counts_text", "fields", "model", "text_chars")

    def __init__(
        self,
        extract: Extract,
        convert: Callable[[Mapping[str, object]], Usage],
        *,
        counts_text: bool = True,
    ) -> None:
        self._extract = extract
        self._convert = convert
        self.counts_text = counts_text
        """Whether a stream may end without usage, so its text must be counted as it goes."""
        self.fields: dict[str, object] = {}
        self.model: str | None = None
        self.text_chars = 0

    def feed(self, obj: object) -> None:
        """One JSON object: a plain body or one streamed event."""
        if not isinstance(obj, dict):
            return
        usage, model = self._extract(obj)
        if isinstance(usage, dict):
            self.fields.update((k, v) for k, v in usage.items() if v is not None)
        if isinstance(model, str) and model and self.model is None:
            self.model = model

    def usage(self) -> Usage | None:
        """The usage the response reported, or None if it reported none."""
        return self._convert(self.fields) if self.fields else None

    def estimated_output(self) -> int:
        return round(self.text_chars / CHARS_PER_TOKEN)


# -- OpenAI (chat, Responses API, embeddings; Azure and compatible servers) -----------------


def _extractor(
    wrapped_in: Mapping[str, str], usage: str = "usage", model: str = "model"
) -> Extract:
    """Reads `usage` and `model` from an object, or from the object an event of one of the
    `wrapped_in` types carries (`{"type": "message_start", "message": {...}}`)."""

    def extract(obj: dict[str, object]) -> tuple[Mapping[str, object] | None, object]:
        wrapper = wrapped_in.get(str(obj.get("type")))
        inner = obj.get(wrapper) if wrapper else None
        if isinstance(inner, dict):
            obj = inner
        found = obj.get(usage)
        return (found if isinstance(found, dict) else None), obj.get(model)

    return extract


_openai_extract = _extractor(
    {t: "response" for t in ("response.completed", "response.incomplete", "response.failed")}
)


def _openai_convert(f: Mapping[str, object]) -> Usage:
    if "input_tokens" in f or "output_tokens" in f:  # Responses API
        return Usage(
            input_tokens=_int(f.get("input_tokens")),
            output_tokens=_int(f.get("output_tokens")),
            cached_input_tokens=_sub(f, "input_tokens_details", "cached_tokens"),
            reasoning_tokens=_sub(f, "output_tokens_details", "reasoning_tokens"),
        )
    return Usage(
        input_tokens=_int(f.get("prompt_tokens")),
        output_tokens=_int(f.get("completion_tokens")),
        cached_input_tokens=_sub(f, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_sub(f, "completion_tokens_details", "reasoning_tokens"),
    )


# -- Anthropic ---------------------------------------------------------------------------------


_anthropic_extract = _extractor({"message_start": "message"})


def _anthropic_convert(f: Mapping[str, object]) -> Usage:
    read = _int(f.get("cache_read_input_tokens"))
    write = _int(f.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=_int(f.get("input_tokens")) + read + write,
        output_tokens=_int(f.get("output_tokens")),
        cached_input_tokens=read,
        cache_creation_tokens=write,
    )


# -- Gemini ------------------------------------------------------------------------------------


_gemini_extract = _extractor({}, usage="usageMetadata", model="modelVersion")


def _gemini_convert(f: Mapping[str, object]) -> Usage:
    thoughts = _int(f.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=_int(f.get("promptTokenCount")) + _int(f.get("toolUsePromptTokenCount")),
        output_tokens=_int(f.get("candidatesTokenCount")) + thoughts,
        cached_input_tokens=_int(f.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


_READERS: Final = {  # (extract, convert, whether its streams may lack usage)
    "openai": (_openai_extract, _openai_convert, True),
    "azure": (_openai_extract, _openai_convert, True),
    "anthropic": (_anthropic_extract, _anthropic_convert, False),
    "gemini": (_gemini_extract, _gemini_convert, False),
}


def reader_for(wire: str) -> UsageReader:
    """A fresh reader for the named wire (OpenAI's shape for wires keyrouter does not know)."""
    extract, convert, counts_text = _READERS.get(wire, _READERS["openai"])
    return UsageReader(extract, convert, counts_text=counts_text)
