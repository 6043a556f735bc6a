"""TensorBoard event files written directly (no tensorboard dependency), in kohya's folder layout.

An event file is a sequence of TFRecords: ``uint64 length``, ``uint32 masked crc32c(length)``, the serialized
``tensorflow.Event`` protobuf, ``uint32 masked crc32c(data)``. The first event carries ``file_version
"brain.Event:2"``; each scalar is an ``Event{wall_time, step, summary{value{tag, simple_value}}}``. kohya's run
folder is ``logging_dir/{log_prefix}{YYYYmmddHHMMSS}/network_train``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecords use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire_type) + payload


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


def event_bytes(wall_time: float, step: int = 0, file_version: str | None = None,
                scalars: dict[str, float] | None = None) -> bytes:
    """A serialized ``Event``: wall_time (1, double), step (2, int64), file_version (3), summary (5)."""
    data = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        data += _length_delimited(3, file_version.encode())
    if scalars:
        values = b"".join(_length_delimited(1, _length_delimited(1, tag.encode()) +
                                            _field(2, 5, struct.pack("<f", value)))
                          for tag, value in scalars.items())
        data += _length_delimited(5, values)
    return data


def record(data: bytes) -> bytes:
    """One TFRecord around ``data``."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def run_dir(logging_dir: Path, prefix: str | None, started: float) -> Path:
    """kohya's run folder: ``logging_dir/{prefix}{YYYYmmddHHMMSS}/network_train``."""
    return Path(logging_dir) / f"{prefix or ''}{time.strftime('%Y%m%d%H%M%S', time.localtime(started))}" \
        / "network_train"


class EventWriter:
    """Appends scalar events to one ``events.out.tfevents.*`` file.

    Args:
        folder: the run folder (created).
    """

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = folder / f"events.out.tfevents.{int(now)}.{socket.gethostname()}"
        self._lock = threading.Lock()
        self._file = open(self.path, "ab")
        self._file.write(record(event_bytes(now, file_version="brain.Event:2")))
        self._file.flush()

    def scalars(self, step: int, values: dict[str, float | None]) -> None:
        """Write one event holding every non-``None`` value at ``step``."""
        present = {tag: float(v) for tag, v in values.items() if v is not None}
        if present:
            with self._lock:
                self._file.write(record(event_bytes(time.time(), step, scalars=present)))

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()
