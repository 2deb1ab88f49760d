"""Credentials for the SASL exchange of the connection handshake, under pika's names.

A credentials object looks at the mechanisms the broker offers in ``Connection.Start`` and says
which one it uses and what its response is (spec section 1.4.2.2, ``Connection.Start-Ok``):

* :class:`PlainCredentials` answers ``PLAIN`` (RFC 4616: a NUL, the user name, a NUL, the
  password) and, when the broker does not offer ``PLAIN``, RabbitMQ's ``AMQPLAIN`` (a field
  table holding ``LOGIN`` and ``PASSWORD`` without its length prefix);
* :class:`ExternalCredentials` answers ``EXTERNAL``: the identity comes from the TLS client
  certificate, the response is empty.
"""

from __future__ import annotations

import struct
from typing import Any, Protocol, TypeAlias

from amqp_core._copying import deep_copy_fields

__all__ = (
    "VALID_TYPES",
    "Credentials",
    "ExternalCredentials",
    "PlainCredentials",
    "offered_mechanisms",
)

_LONG = struct.Struct(">I")


class _StartLike(Protocol):
    """What a credentials object reads from ``Connection.Start``."""

    @property
    def mechanisms(self) -> bytes | str: ...


def offered_mechanisms(start: _StartLike) -> list[str]:
    """Return the SASL mechanisms a ``Connection.Start`` offers, in the broker's order.

    Spec: "mechanisms: a list of the security mechanisms that the server supports, delimited
    by spaces" (a long string, so bytes on the wire).
    """
    raw = start.mechanisms
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    return text.split()


def _shortstr(value: bytes) -> bytes:
    return bytes((len(value),)) + value


class PlainCredentials:
    """A user name and password, sent with ``PLAIN`` (or ``AMQPLAIN`` if that is all offered).

    Args:
        username: the user name.
        password: the password.
        erase_on_connect: forget both once they have been sent (pika compatibility).

    Attributes:
        TYPE: ``"PLAIN"``.
    """

    TYPE = "PLAIN"

    __slots__ = ("erase_on_connect", "password", "username")

    def __init__(self, username: str, password: str, erase_on_connect: bool = False) -> None:
        self.username = username
        self.password = password
        self.erase_on_connect = erase_on_connect

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlainCredentials):
            return NotImplemented
        return (self.username, self.password, self.erase_on_connect) == (
            other.username,
            other.password,
            other.erase_on_connect,
        )

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> PlainCredentials:
        # Every connect copies its credentials (twice, with the parameters): see _copying.
        return deep_copy_fields(self, memo)

    def __repr__(self) -> str:
        # Never show the password.
        return f"PlainCredentials(username={self.username!r})"

    def response_for(self, start: _StartLike) -> tuple[str | None, bytes | None]:
        """Choose a mechanism among those ``start`` offers and build its response.

        Args:
            start: the broker's ``Connection.Start``.

        Returns:
            ``(mechanism, response)``, or ``(None, None)`` when the broker offers neither
            ``PLAIN`` nor ``AMQPLAIN``.
        """
        offered = offered_mechanisms(start)
        user = self.username.encode("utf-8")
        password = self.password.encode("utf-8")
        if "PLAIN" in offered:
            # RFC 4616: authzid NUL authcid NUL passwd, with an empty authzid.
            return "PLAIN", b"\x00" + user + b"\x00" + password
        if "AMQPLAIN" in offered:
            # RabbitMQ's AMQPLAIN: a field table's entries without the table's length prefix,
            # each a short-string key, the type tag "S" and a long string.
            return "AMQPLAIN", b"".join(
                (
                    _shortstr(b"LOGIN"),
                    b"S",
                    _LONG.pack(len(user)),
                    user,
                    _shortstr(b"PASSWORD"),
                    b"S",
                    _LONG.pack(len(password)),
                    password,
                )
            )
        return None, None

    def erase_credentials(self) -> None:
        """Forget the user name and password if ``erase_on_connect`` is set."""
        if self.erase_on_connect:
            self.username = ""
            self.password = ""


class ExternalCredentials:
    """Authentication by the TLS client certificate (SASL ``EXTERNAL``).

    Attributes:
        TYPE: ``"EXTERNAL"``.
    """

    TYPE = "EXTERNAL"

    __slots__ = ("erase_on_connect",)

    def __init__(self) -> None:
        self.erase_on_connect = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExternalCredentials):
            return NotImplemented
        return True

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> ExternalCredentials:
        return deep_copy_fields(self, memo)

    def __repr__(self) -> str:
        return "ExternalCredentials()"

    def response_for(self, start: _StartLike) -> tuple[str | None, bytes | None]:
        """Return ``("EXTERNAL", b"")`` if the broker offers it, else ``(None, None)``.

        Args:
            start: the broker's ``Connection.Start``.
        """
        if "EXTERNAL" in offered_mechanisms(start):
            return "EXTERNAL", b""
        return None, None

    def erase_credentials(self) -> None:
        """Do nothing: there is nothing to forget (pika API)."""


#: The credential types a connection accepts (pika's ``credentials.VALID_TYPES``).
VALID_TYPES = [PlainCredentials, ExternalCredentials]

Credentials: TypeAlias = "PlainCredentials | ExternalCredentials"
"""Any credentials object the engine accepts."""
