"""Scalars from the TensorBoard event files training writes (`WORKDIR/tb`), without TensorFlow.

Event files are TFRecords (length u64, its CRC u32, an Event proto, its CRC u32); the
protos are tensorboardX's. A resumed run's writer opens with a SessionLog START at its
first step (tensorboardX's `purge_step`): as TensorBoard does, values an earlier file
logged at or after that step are dropped, so every step keeps the value of the run that
went on. Used by `benchmarks/paper_tables.py` and the training tests.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from tensorboardX.proto import event_pb2


def read_events(path: str | os.PathLike) -> list:
    """The Event protos of one event file; a record cut short at its end (a killed
    writer) ends it."""
    data, i, events = Path(path).read_bytes(), 0, []
    while i + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        if i + 12 + n + 4 > len(data):
            break
        events.append(event_pb2.Event.FromString(data[i + 12 : i + 12 + n]))
        i += 12 + n + 4
    return events


def read_scalars(directory: str | os.PathLike) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the scalar summaries in `directory`'s event files, read in
    the order they were opened (their first event's time: names have whole seconds)."""
    files = [read_events(path) for path in sorted(Path(directory).glob("events.out.tfevents.*"))]
    scalars: dict[str, dict[int, float]] = {}
    for events in sorted(files, key=lambda events: events[0].wall_time if events else 0.0):
        for event in events:
            if event.session_log.status == event_pb2.SessionLog.START:
                for values in scalars.values():
                    for step in [s for s in values if s >= event.step]:
                        del values[step]
            for value in event.summary.value:
                if value.WhichOneof("value") == "simple_value":
                    scalars.setdefault(value.tag, {})[int(event.step)] = float(value.simple_value)
    return scalars


__all__ = ["read_events", "read_scalars"]
