"""The ways in: `patch()` for every client, `KeyRouted*` client subclasses, scoped `pool()`."""
