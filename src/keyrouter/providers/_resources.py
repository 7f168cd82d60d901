"""Stateful resources that belong to the quota scope (organisation/project) that created them.

A file, batch, vector store, stored response, assistant, thread, fine-tune, message batch or
cached content can only be used with a key of the scope that created it. keyrouter learns the
ids from the answers to the requests that create them and sends any later request naming one
of them with a key of that scope. Ids are recognised by their providers' formats.
"""

from __future__ import annotations

import json
import re
from typing import Final

__all__ = ["created_resource", "creates_resource", "named_resources"]

_ID = re.compile(
    r"(?<![A-Za-z0-9_-])("
    r"file-[A-Za-z0-9]{6,}|file_[A-Za-z0-9]{6,}|batch_[A-Za-z0-9]{6,}|vs_[A-Za-z0-9]{6,}"
    r"|resp_[A-Za-z0-9]{6,}|asst_[A-Za-z0-9]{6,}|thread_[A-Za-z0-9]{6,}|ftjob-[A-Za-z0-9]{6,}"
    r"|conv_[A-Za-z0-9]{6,}|msgbatch_[A-Za-z0-9]{6,}|files/[a-z0-9]{6,}"
    r"|cachedContents/[a-z0-9]{6,}"
    r")(?![A-Za-z0-9_-])"
)
_MAX_SCAN: Final = 256 * 1024
_CREATING_PATHS: Final = (
    "/files",
    "/batches",
    "/vector_stores",
    "/responses",
    "/assistants",
    "/threads",
    "/fine_tuning/jobs",
    "/conversations",
    "/messages/batches",
    "/cachedContents",
)


def named_resources(path: str, body: bytes) -> list[str]:
    """Resource ids a request names, in its path or (the first 256 KiB of) its body."""
    found = _ID.findall(path)
    if body and _ID_HINT.search(body[:_MAX_SCAN]):
        found += _ID.findall(body[:_MAX_SCAN].decode("utf-8", "replace"))
    return found


_ID_HINT = re.compile(rb"file|batch_|vs_|resp_|asst_|thread_|ftjob-|conv_|cachedContents")


def creates_resource(method: str, path: str) -> bool:
    """Whether the answer to this request may hold the id of a new stateful resource."""
    if method != "POST":
        return False
    known = _CREATES.get(path)
    if known is None:
        known = path.rstrip("/").endswith(_CREATING_PATHS)
        if len(_CREATES) < _MAX_CACHED_PATHS:  # a client posts to a handful of paths
            _CREATES[path] = known
    return known


_CREATES: dict[str, bool] = {}
_MAX_CACHED_PATHS: Final = 1024


def created_resource(body: bytes) -> str | None:
    """The id (or Gemini `name`) of the resource a JSON answer describes, if it is one of ours."""
    if not body or body[:1] != b"{" or len(body) > _MAX_SCAN:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    for field in ("id", "name"):
        value = parsed.get(field)
        if isinstance(value, str) and _ID.fullmatch(value):
            return value
    return None
