"""``DeliveryMode``: whether the broker writes a message to disk (pika's ``pika.delivery_mode``).

The values are those of the ``delivery-mode`` basic property (spec 1.8, class basic:
"non-persistent (1) or persistent (2)").
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ("DeliveryMode",)


class DeliveryMode(IntEnum):
    """The ``delivery_mode`` of ``BasicProperties``.

    An ``IntEnum`` (as at pika's HEAD; 1.4.4 has a plain ``Enum``), so a member compares equal
    to its number and can be stored in properties as is.
    """

    Transient = 1
    Persistent = 2
