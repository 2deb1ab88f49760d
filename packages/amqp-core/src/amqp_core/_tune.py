"""Tuning: turn the client's settings and the broker's ``Connection.Tune`` into final values.

Spec section 1.4.2.6 (``Connection.Tune`` / ``Tune-Ok``): the server proposes ``channel-max``,
``frame-max`` and ``heartbeat``; the client answers with the values it will use, which may be
lower than the server's but not higher. For the two maxima, zero means "no limit", so the result
is the lower of the two non-zero values; for the heartbeat, zero means "off".
"""

from __future__ import annotations

from dataclasses import dataclass

from amqp_core.config import FRAME_MIN_SIZE, EngineConfig, HeartbeatSetting

__all__ = ("TuneParameters", "negotiate", "negotiate_heartbeat", "negotiate_maximum")

#: Channel numbers are 16-bit (spec 4.2.3), so "no limit" means 65535 in practice.
_CHANNEL_ID_MAX = 65535


@dataclass(frozen=True, slots=True)
class TuneParameters:
    """The values the client sends in ``Tune-Ok`` and then lives by.

    Attributes:
        channel_max: the highest usable channel number, as sent (0 = no limit).
        frame_max: the largest frame in either direction, as sent (0 = no limit).
        heartbeat: the heartbeat timeout in seconds (0 = off).
    """

    channel_max: int
    frame_max: int
    heartbeat: int

    @property
    def usable_channel_max(self) -> int:
        """The highest channel number that may be allocated: 65535 when unlimited."""
        return self.channel_max or _CHANNEL_ID_MAX


def negotiate_maximum(client: int, server: int) -> int:
    """Combine two proposals for a maximum where 0 means "no limit".

    Returns:
        The lower of the two non-zero values; the other one if one is 0; 0 if both are.
    """
    if client == 0:
        return server
    if server == 0:
        return client
    return min(client, server)


def negotiate_heartbeat(setting: HeartbeatSetting, server: int) -> int:
    """Choose the heartbeat timeout (pika's rule: the client's choice wins).

    Args:
        setting: ``None`` to take the server's proposal, an ``int`` to override it (0 turns
            heartbeats off), or a callable that receives the proposal and returns the value.
        server: the broker's proposal in seconds (0 = the broker would rather not).

    Returns:
        The timeout in seconds, 0 for off.

    Raises:
        ValueError: the callable returned something that is not an int in 0..65535.
    """
    if setting is None:
        return server
    value = setting(server) if callable(setting) else setting
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError(f"heartbeat callable returned {value!r}; it must be an int in 0..65535")
    return value


def negotiate(
    config: EngineConfig, channel_max: int, frame_max: int, heartbeat: int
) -> TuneParameters:
    """Negotiate all three values.

    Args:
        config: the client's settings.
        channel_max: the broker's ``channel-max``.
        frame_max: the broker's ``frame-max``.
        heartbeat: the broker's ``heartbeat``.

    Returns:
        The values for ``Tune-Ok``.

    Raises:
        ValueError: the broker proposed a frame_max below the spec's minimum of 4096 (it
            "MUST accept frames of up to frame-min-size octets"), or a heartbeat callable
            returned a bad value.
    """
    if 0 < frame_max < FRAME_MIN_SIZE:
        raise ValueError(
            f"the broker proposed frame_max {frame_max}, below the minimum of {FRAME_MIN_SIZE}"
        )
    return TuneParameters(
        channel_max=negotiate_maximum(config.channel_max, channel_max),
        frame_max=negotiate_maximum(config.frame_max, frame_max),
        heartbeat=negotiate_heartbeat(config.heartbeat, heartbeat),
    )
