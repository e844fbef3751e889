"""Client order ids that survive a restart.

Backpack's client ids are unsigned 32-bit integers, so every venue gets one: 10 bits of instance
tag, 10 bits of grid level, 1 bit of role (opening or closing order) and 11 bits of sequence.
A restarted bot decodes the ids of the open orders it finds and knows which level each belongs
to, instead of placing duplicates. The tag keeps two instances' orders apart on one account.
"""
from __future__ import annotations

import zlib
from functools import lru_cache
from typing import NamedTuple

ROLE_OPEN = 0
ROLE_CLOSE = 1
MAX_LEVEL = (1 << 10) - 1
MAX_SEQ = (1 << 11) - 1


class ClientId(NamedTuple):
    tag: int
    level: int
    role: int
    seq: int


@lru_cache(maxsize=256)
def instance_tag(instance_id: str) -> int:
    """10 bits of the instance id's CRC (memoised: every fill and order of a turn asks it)."""
    return zlib.crc32(instance_id.encode()) & 0x3FF


def encode(instance_id: str, level: int, role: int, seq: int = 0) -> int:
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"grid level {level} out of range 0..{MAX_LEVEL}")
    if role not in (ROLE_OPEN, ROLE_CLOSE):
        raise ValueError(f"role must be {ROLE_OPEN} or {ROLE_CLOSE}")
    return (instance_tag(instance_id) << 22) | (level << 12) | (role << 11) | (seq & MAX_SEQ)


def decode(client_id: int) -> ClientId:
    return ClientId((client_id >> 22) & 0x3FF, (client_id >> 12) & MAX_LEVEL, (client_id >> 11) & 1, client_id & MAX_SEQ)


def belongs_to(client_id: int | None, instance_id: str) -> bool:
    return client_id is not None and 0 <= client_id < (1 << 32) and decode(client_id).tag == instance_tag(instance_id)
