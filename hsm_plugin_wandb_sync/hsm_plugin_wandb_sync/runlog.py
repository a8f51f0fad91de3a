"""Reading a run's ``run-<id>.wandb`` transaction log.

The file is wandb's "leveldb log": a 7-byte header (``:W&B``, magic ``0xBEE1``, version 0), then
32 KiB blocks of chunks, each with a 7-byte header (CRC-32 over the type byte and the data, data
length, type FULL/FIRST/MIDDLE/LAST) carrying serialized protobuf ``Record`` messages. wandb 0.31
no longer ships a Python reader (``wandb.sdk.internal.datastore`` is gone; its Go core reads the
log), so the framing is decoded here and each record with wandb's own
``wandb.proto.wandb_internal_pb2.Record`` class.

Only the records that matter for syncing are decoded (the run record, artifacts, the exit record):
the record type is read from the first bytes of each message, so a long history costs a scan, not
a protobuf parse per step. A log that ends mid-record (a run still writing: wandb flushes whole
blocks) or has a bad checksum is read up to that point.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from hsm_core.plugin import HsmError

HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
IDENT = b":W&B"
MAGIC = 0xBEE1
BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_CRC_OF_TYPE = {t: zlib.crc32(bytes([t])) & 0xFFFFFFFF for t in (FULL, FIRST, MIDDLE, LAST)}

# Field numbers of the Record oneof "record_type" we decode (checked against the installed wandb's
# descriptor by the tests: they are part of wandb's on-disk format and do not change).
RUN_FIELD = 17
EXIT_FIELD = 18
ARTIFACT_FIELD = 8
WANTED = {RUN_FIELD, EXIT_FIELD, ARTIFACT_FIELD}


@dataclass
class ArtifactFile:
    """One file of a logged artifact."""

    path: str  #: path inside the artifact
    local_path: str  #: where its payload is on this machine (wandb's staging copy), or ""
    size: int
    digest: str
    ref: str = ""  #: set for reference entries (s3://, file://): no payload to copy


@dataclass
class ArtifactLog:
    """One ``log_artifact`` record."""

    name: str
    type: str
    digest: str
    aliases: list[str]
    files: list[ArtifactFile]


@dataclass
class LogSummary:
    """What a transaction log says about its run."""

    run_id: str = ""
    project: str = ""
    entity: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config_sweep_id: str | None = None
    start_time: float = 0.0
    resumed: bool = False
    has_run_record: bool = False
    #: an exit record was written: the run (this attempt) ended through wandb
    exited: bool = False
    exit_code: int | None = None
    artifacts: list[ArtifactLog] = field(default_factory=list)
    #: bytes of the file when read; False in ``intact`` means the log ended early or was corrupt
    size: int = 0
    intact: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "LogSummary":
        d = dict(d)
        arts = [ArtifactLog(**{**a, "files": [ArtifactFile(**f) for f in a["files"]]}) for a in d.pop("artifacts", [])]
        return cls(**d, artifacts=arts)


def record_pb() -> Any:
    """wandb's ``Record`` protobuf class (imports wandb: call only when a log must be parsed)."""
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as exc:
        raise HsmError(
            f"reading W&B run logs needs the wandb package ({exc})",
            hint="pip install wandb",
        ) from None
    return wandb_internal_pb2.Record


def iter_messages(data: bytes) -> Iterator[bytes]:
    """The serialized records of a log, in order; stops at the first damaged or missing byte."""
    if len(data) < HEADER.size:
        raise ValueError("shorter than the log header")
    ident, magic, version = HEADER.unpack_from(data, 0)
    if ident != IDENT or magic != MAGIC:
        raise ValueError("not a W&B transaction log")
    pos = HEADER.size
    end = len(data)
    pending: list[bytes] | None = None
    while pos < end:
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # block trailer padding
            pos += left
            continue
        if pos + CHUNK.size > end:
            return
        crc, length, kind = CHUNK.unpack_from(data, pos)
        if crc == 0 and length == 0 and kind == 0:
            return  # zero-filled space not written yet
        start = pos + CHUNK.size
        if start + length > end or kind not in _CRC_OF_TYPE:
            return
        payload = data[start : start + length]
        if zlib.crc32(payload, _CRC_OF_TYPE[kind]) & 0xFFFFFFFF != crc:
            return
        pos = start + length
        if kind == FULL:
            pending = None
            yield payload
        elif kind == FIRST:
            pending = [payload]
        elif kind == MIDDLE:
            if pending is not None:
                pending.append(payload)
        elif kind == LAST:
            if pending is not None:
                pending.append(payload)
                yield b"".join(pending)
            pending = None


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise IndexError
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def record_type(buf: bytes) -> int | None:
    """The field number of a Record's oneof member, read without parsing the message."""
    pos = 0
    try:
        while pos < len(buf):
            tag, pos = _varint(buf, pos)
            number, wire = tag >> 3, tag & 7
            if wire == 2:
                length, pos = _varint(buf, pos)
                if 2 <= number <= 27 and number not in (16, 19) or number == 100:
                    return number  # control (16) and uuid (19) are not record types
                pos += length
            elif wire == 0:
                _, pos = _varint(buf, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                return None
    except IndexError:
        return None
    return None


def summarize(data: bytes) -> LogSummary:
    """Read a whole log (bytes) into a :class:`LogSummary`."""
    out = LogSummary(size=len(data))
    Record = None
    try:
        messages = list(iter_messages(data))
    except ValueError:
        out.intact = False
        return out
    consumed_all = True
    for msg in messages:
        kind = record_type(msg)
        if kind not in WANTED:
            continue
        if Record is None:
            Record = record_pb()
        rec = Record()
        try:
            rec.ParseFromString(msg)
        except Exception:
            consumed_all = False
            break
        if kind == RUN_FIELD:
            run = rec.run
            out.has_run_record = True
            out.run_id = run.run_id
            out.project = run.project
            out.entity = run.entity
            out.group = run.run_group
            out.tags = list(run.tags)
            out.start_time = run.start_time.seconds + run.start_time.nanos / 1e9
            out.resumed = bool(run.resumed)
            for item in run.config.update:
                if item.key == "sweep_id" or list(item.nested_key) == ["sweep_id"]:
                    try:
                        value = json.loads(item.value_json)
                    except ValueError:
                        value = item.value_json
                    out.config_sweep_id = str(value) if value is not None else None
        elif kind == EXIT_FIELD:
            out.exited = True
            out.exit_code = int(rec.exit.exit_code)
        elif kind == ARTIFACT_FIELD:
            a = rec.artifact
            files = [
                ArtifactFile(e.path, e.local_path, int(e.size), e.digest, e.ref)
                for e in a.manifest.contents
            ]
            out.artifacts.append(ArtifactLog(a.name, a.type, a.digest, list(a.aliases), files))
    out.intact = consumed_all
    return out


def read_log(path: Path) -> LogSummary:
    """:func:`summarize` a log file (a missing or unreadable file gives an empty summary)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return LogSummary(intact=False)
    return summarize(data)
