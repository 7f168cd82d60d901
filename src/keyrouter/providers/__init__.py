"""One module per provider wire format: how a key is written into a request, what the
response's status, rate-limit headers and error body mean, and what a request will cost.

Each module exposes a `WIRE` object satisfying `keyrouter.providers.base.Wire`.
"""
