"""Every exception keyrouter raises itself, in one place.

keyrouter never raises these from inside an SDK call: there the SDK's own exceptions reach the
caller. These are for configuration time (bad keys, bad options) and for the core's own API.
No message here ever contains a secret: keys are shown by fingerprint only.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConfigFileError",
    "KeyFileError",
    "KeyFormatError",
    "KeyPrefixWarning",
    "KeyrouterError",
    "PlaintextSecretWarning",
    "StoreError",
]


class KeyrouterError(Exception):
    """Base class of keyrouter's own errors."""


class ConfigError(KeyrouterError, ValueError):
    """A pool, key or option was given in a form keyrouter cannot use.

    The message names the field and what is wrong with it, never the secret itself.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class ConfigFileError(ConfigError):
    """The config file (`keyrouter.toml`) cannot be used: the message names the file, then the
    line (a syntax error) or the field (`pools.openai.keys[0].tier`) and what is wrong."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = f"{path}:{line}" if line is not None else path
        KeyrouterError.__init__(
            self, f"{where}: {field}: {message}" if field else f"{where}: {message}"
        )


class PlaintextSecretWarning(UserWarning):
    """A config file holds a secret in plain text (allowed only with allow_plaintext_secrets)."""


class KeyPrefixWarning(UserWarning):
    """A pool holds a key that looks like another provider's (an `sk-ant-` key as openai).

    A warning, not an error: OpenAI-compatible endpoints and proxies take other providers'
    keys through the openai SDK, so only the user knows whether it is a mistake.
    """


class KeyFormatError(ConfigError):
    """A key is empty, has whitespace, or is not a string."""


class KeyFileError(KeyrouterError):
    """The encrypted key file or its master key cannot be used as asked.

    Raised before anything is written: a wrong master key, a tampered file or a master-key
    file others can read leaves every file exactly as it was. `path` names the file at fault.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class StoreError(ConfigError):
    """A state store cannot be used: a file that is not a database, a file locked by another
    process, an unknown store URL. Raised when the store is opened (by `patch(store=...)`),
    never from inside a call: an outage after that degrades to the process's own state."""
