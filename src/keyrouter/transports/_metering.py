"""Metering: read a delivered response's usage on its way to the SDK, bytes untouched.

When the pool keeps usage (`KeyPool.spending` is set), the response the SDK gets has its byte
stream wrapped: each chunk passes through unchanged while a bounded parser looks for usage
(a plain JSON body is parsed once at the end; a server-sent-events stream line by line). When
the stream ends or is closed (read to the end, or abandoned half way) the call is settled:
its cost charged to its budgets and a `UsageRecord` kept. A stream that reported no usage
(OpenAI chat without `stream_options.include_usage`) is charged an estimate: the request's
estimated input plus the streamed text, marked `estimated`. Pools without spending pay one
attribute check per call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import zlib
from typing import Any

from keyrouter.core.budget import Spending
from keyrouter.core.decision import Lease
from keyrouter.core.events import UsageRecorded
from keyrouter.core.quota import Demand
from keyrouter.core.usage import Usage
from keyrouter.providers._usage import UsageReader, count_text, output_allowance, reader_for
from keyrouter.transports._flavor import package_of
from keyrouter.transports._plan import Plan

__all__ = ["before_sending", "metered"]

_log = logging.getLogger("keyrouter")
_MAX_JSON_BYTES = 8 * 1024 * 1024
_MAX_LINE_BYTES = 1024 * 1024
_USAGE_MARKERS = (b'"usage', b"usageMetadata")


def before_sending(
    spending: Spending, request: Any, body: bytes, demand: Demand, now: float
) -> str | None:
    """Why a metered pool refuses `request` before sending (a pool budget is spent), or None.

    With `include_usage`, an OpenAI chat stream that did not ask for usage is made to
    (`stream_options.include_usage`), so its cost is exact instead of estimated.
    """
    refusal = spending.pool_refusal(demand, now)
    if refusal is None and spending.include_usage and b'"stream"' in body:
        _ask_for_usage(request, body)
    return refusal


def _ask_for_usage(request: Any, body: bytes) -> None:
    if not request.url.path.endswith("/chat/completions"):
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    if not isinstance(parsed, dict) or parsed.get("stream") is not True:
        return
    options = parsed.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    if "include_usage" in options:
        return  # the caller decided
    options["include_usage"] = True
    parsed["stream_options"] = options
    content = json.dumps(parsed, separators=(",", ":")).encode()
    request.headers["content-length"] = str(len(content))
    request.stream = package_of(request).ByteStream(content)
    request._content = content


def metered(plan: Plan, lease: Lease, response: Any, *, is_async: bool) -> Any:
    """`response` as the SDK should get it, its usage recorded when its body ends."""
    spending = plan.pool.spending
    if spending is None:
        return response
    try:
        meter = _Meter(plan, lease, response)
        if hasattr(response, "_content"):  # already read (made up, or read to learn from)
            meter.feed_decoded(response.content)
            meter.end()
        else:
            response.stream = _wrap(response, meter, is_async=is_async)
    except Exception:  # never break the caller's call over bookkeeping
        _log.warning("keyrouter could not meter a response", exc_info=True)
        spending.release(lease)
    return response


class _Meter:
    """Parses one response body incrementally (bounded) and settles the call at the end."""

    def __init__(self, plan: Plan, lease: Lease, response: Any) -> None:
        self.plan = plan
        self.lease = lease
        self.status: int | None = response.status_code
        self.response = response
        headers = response.headers
        ctype = str(headers.get("content-type", ""))
        self.sse = ctype.startswith("text/event-stream")
        self.json = ctype.startswith("application/json")
        self.reader: UsageReader = reader_for(plan.route.wire.name)
        self._decoder = _decoder(str(headers.get("content-encoding", "")).strip().lower())
        self._buffer = bytearray()
        self._overflow = False
        self._done = False

    def feed_raw(self, chunk: bytes) -> None:
        if self._done or self._overflow or not (self.sse or self.json):
            return
        try:
            data = self._decoder(chunk) if self._decoder is not None else chunk
        except Exception:
            self._overflow = True  # an encoding we cannot read: the call is estimated
            return
        self.feed_decoded(data)

    def feed_decoded(self, data: bytes) -> None:
        if self.sse:
            self._feed_lines(data)
        elif self.json:
            if len(self._buffer) + len(data) > _MAX_JSON_BYTES:
                self._overflow = True
                self._buffer.clear()
            else:
                self._buffer += data

    def _feed_lines(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            self._line(bytes(buffer[start:end]))
            start = end + 1
        del buffer[:start]
        if len(buffer) > _MAX_LINE_BYTES:
            buffer.clear()  # a line this long holds no usage worth the memory

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if any(marker in payload for marker in _USAGE_MARKERS) or b"message_start" in payload:
            with contextlib.suppress(ValueError):
                self.reader.feed(json.loads(payload))
        if self.reader.counts_text:
            self.reader.text_chars += count_text(payload)

    def end(self) -> None:
        """The body ended or was closed: settle once (never raises into the SDK)."""
        if self._done:
            return
        self._done = True
        try:
            self._settle()
        except Exception:
            _log.warning("keyrouter could not record a call's usage", exc_info=True)

    def _settle(self) -> None:
        if self.sse and self._buffer:
            self._line(bytes(self._buffer))
        elif self.json and self._buffer and not self._overflow:
            with contextlib.suppress(ValueError):
                self.reader.feed(json.loads(bytes(self._buffer)))
            if not self.reader.fields:
                self.reader.text_chars += count_text(bytes(self._buffer))
        self._buffer = bytearray()
        usage = self.reader.usage()
        estimated = usage is None
        spending = self.plan.pool.spending
        if usage is None and self.reader.model is None and self.lease.demand.model is None:
            # No model and no usage (a models list, a file download): nothing was billed by
            # the token, so nothing is recorded; the (zero) reservation is let go.
            if spending is not None:
                spending.release(self.lease)
            return
        if usage is None:
            usage = self._estimate()
        if spending is not None:
            record = spending.finish(
                self.lease,
                usage,
                model=self.reader.model,
                estimated=estimated,
                status=self.status,
                now=self.plan.route.clock(),
            )
            listeners = self.plan.pool.book.listeners
            if listeners.routine():
                key = self.lease.key
                listeners.emit(
                    [
                        UsageRecorded(
                            self.plan.route.wire.name,
                            key.label,
                            key.scope_label,
                            record.model,
                            record.usage,
                            record.cost_usd,
                            record.estimated,
                            record.latency_s,
                            record.at,
                        )
                    ]
                )

    def _estimate(self) -> Usage:
        if self.status is not None and self.status >= 400:
            return Usage()  # an error answer is not billed
        demand = self.lease.demand
        output = self.reader.estimated_output()
        prompt = demand.get("input_tokens")
        if not prompt:
            # OpenAI's demand is the prompt plus the output cap: take the cap back out.
            request = getattr(self.response, "_request", None)  # set by the client by now
            body = getattr(request, "_content", b"") or b""
            prompt = max(0.0, demand.get("tokens") - output_allowance(bytes(body)))
        return Usage(input_tokens=round(prompt), output_tokens=output)


def _decoder(encoding: str) -> Any:
    """A chunk decoder for `content-encoding` (None for identity)."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(
            zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS
        )
        return inflater.decompress
    if encoding == "br":
        try:
            import brotli  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise ValueError("brotli is not installed") from None
        return brotli.Decompressor().process
    raise ValueError(f"unsupported content-encoding {encoding!r}")


_CLASSES: dict[tuple[str, bool], type[Any]] = {}


def _wrap(response: Any, meter: _Meter, *, is_async: bool) -> Any:
    package = package_of(response)
    cls = _CLASSES.get((package.__name__, is_async))
    if cls is None:
        cls = _CLASSES[(package.__name__, is_async)] = _stream_class(package, is_async=is_async)
    return cls(response.stream, meter)


def _stream_class(package: Any, *, is_async: bool) -> type[Any]:
    """A byte stream of `package` (httpx or httpx2) that passes chunks through a meter."""
    if is_async:

        class AsyncMeteredStream(package.AsyncByteStream):  # type: ignore[misc]
            def __init__(self, inner: Any, meter: _Meter) -> None:
                self._inner = inner
                self._meter = meter

            async def __aiter__(self) -> Any:
                async for chunk in self._inner:
                    self._meter.feed_raw(chunk)
                    yield chunk
                self._meter.end()

            async def aclose(self) -> None:
                try:
                    await self._inner.aclose()
                finally:
                    self._meter.end()

        return AsyncMeteredStream

    class SyncMeteredStream(package.SyncByteStream):  # type: ignore[misc]
        def __init__(self, inner: Any, meter: _Meter) -> None:
            self._inner = inner
            self._meter = meter

        def __iter__(self) -> Any:
            for chunk in self._inner:
                self._meter.feed_raw(chunk)
                yield chunk
            self._meter.end()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._meter.end()

    return SyncMeteredStream
