"""Crash-test script: produce with acks=all while the broker is SIGKILLed, then prove nothing
acknowledged was lost, duplicated, reordered or corrupted.

Each cycle: start (or restart) a real `python -m kbroker` process on the same data dir and
port; a producer thread pipelines Produce requests (acks=-1, raw wire protocol, up to
`IN_FLIGHT` requests outstanding, random codecs, 2 partitions) whose record values carry a
global sequence number; after a random number of acknowledgements the broker is killed with
SIGKILL while requests are still in flight. Then:

* offline, on a copy of the data dir as the crash left it: the checkpoint files parse; the
  offset indexes of segments below the recovery point point at batch starts with the right
  offsets; after recovery (`PartitionLog.open`) every batch has a valid CRC32C, offsets are
  contiguous, the recovery point / high watermark / log start checkpoints are within the log,
  and the rebuilt indexes agree with the batches;
* online, after the restart: a Fetch from offset 0 of each partition returns every
  acknowledged record exactly once and in order, every batch's CRC is intact, and the log is
  the previous cycle's log plus new records (nothing that was there has changed or vanished).

Producer retries are off (each record is sent once), so a record may only be missing if its
produce was never acknowledged. Run it directly for a long run:

    python -m tests.crash.crash_cycles --cycles 200 --seed 7 [--flush-on-ack]

`tests/crash/test_crash_cycles.py` runs a short variant in the default suite and a long one
behind the `slow` marker.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import socket
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from protocol.record_codec import Record, build_batch, decode_batch
from protocol.records import BATCH_HEADER, BatchHeader, Compression, compute_crc, iter_batches

from kbroker.log import checkpoints, files
from kbroker.log.index import OFFSET_ENTRY
from kbroker.log.log_config import LogConfig
from kbroker.log.partition_log import PartitionLog
from kbroker.testing import KafkaBroker
from tests.integration.wire import WireClient

logger = logging.getLogger(__name__)

TOPIC = "crash"
PARTITIONS = 2
IN_FLIGHT = 8
PRODUCE, FETCH, CREATE_TOPICS = 0, 1, 19
PRODUCE_VERSION, FETCH_VERSION, CREATE_TOPICS_VERSION = 7, 4, 4
SEGMENT_BYTES = 16_384  # small segments: many rolls, indexes and segment boundaries per cycle
ACK_DEADLINE_S = 30.0
KEYS = 97  # record keys cycle through this many values (compaction has work to do)


@dataclass
class Ledger:
    """What the test knows: acknowledged sequence numbers and the log as last verified."""

    acked: dict[int, list[int]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})
    verified: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: {p: [] for p in range(PARTITIONS)})
    next_sequence: int = 0
    errors: list[str] = field(default_factory=list)  # failures seen by the producer thread
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked_count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.acked.values())


# ----------------------------------------------------------------------------- producing


def _batch(rng: random.Random, first_sequence: int, count: int) -> bytes:
    records = [Record(i, 0, b"key-%d" % key_of(first_sequence + i),
                      b"seq=%d;" % (first_sequence + i) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))))
               for i in range(count)]
    codec = rng.choice([Compression.NONE, Compression.NONE, Compression.GZIP, Compression.ZSTD, Compression.LZ4])
    return build_batch(records, base_timestamp=int(time.time() * 1000), compression=codec)


def produce_until_killed(bootstrap: str, ledger: Ledger, seed: int, stop: threading.Event) -> None:
    """Pipeline acks=-1 Produce requests until the connection dies or `stop` is set."""
    rng = random.Random(seed)
    pending: list[tuple[int, int, list[int]]] = []  # (correlation id, partition, sequences)
    try:
        client = WireClient(bootstrap, timeout_s=10)
    except OSError:
        return
    try:
        while not stop.is_set():
            while len(pending) < IN_FLIGHT:
                partition = rng.randrange(PARTITIONS)
                count = rng.randint(1, 6)
                with ledger.lock:
                    first = ledger.next_sequence
                    ledger.next_sequence += count
                body = {"transactional_id": None, "acks": -1, "timeout_ms": 10_000,
                        "topic_data": [{"name": TOPIC, "partition_data": [
                            {"index": partition, "records": _batch(rng, first, count)}]}]}
                correlation_id = client.send(PRODUCE, PRODUCE_VERSION, body)
                pending.append((correlation_id, partition, list(range(first, first + count))))
            correlation_id, partition, sequences = pending.pop(0)
            response = client.receive(PRODUCE, PRODUCE_VERSION, correlation_id)
            result = response["responses"][0]["partition_responses"][0]
            if result["error_code"] != 0:
                if not stop.is_set():
                    ledger.errors.append(f"produce failed before the kill: {result}")
                return
            with ledger.lock:
                ledger.acked[partition].extend(sequences)
    except (OSError, AssertionError) as exc:  # the kill: reset, EOF or a closed socket
        if not stop.is_set():
            ledger.errors.append(f"producer connection failed before the kill: {exc!r}")
    finally:
        client.close()


def produce_sequences(bootstrap: str, partition: int, sequences: list[int]) -> int:
    """Produce one batch carrying `sequences` with acks=-1; returns its base offset."""
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 10_000,
            "topic_data": [{"name": TOPIC, "partition_data": [
                {"index": partition, "records": _batch(random.Random(sequences[0]), sequences[0], len(sequences))}]}]}
    with WireClient(bootstrap) as client:
        result = client.request(PRODUCE, PRODUCE_VERSION, body)["responses"][0]["partition_responses"][0]
    assert result["error_code"] == 0, result
    return result["base_offset"]


# ----------------------------------------------------------------------------- checking


def fetch_all(bootstrap: str, partition: int) -> list[tuple[int, int]]:
    """(offset, sequence) of every record of a partition, via Fetch; asserts every CRC."""
    out: list[tuple[int, int]] = []
    offset = 0
    with WireClient(bootstrap, timeout_s=15) as client:
        while True:
            body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                    "isolation_level": 0, "topics": [{"topic": TOPIC, "partitions": [
                        {"partition": partition, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}]}
            response = client.request(FETCH, FETCH_VERSION, body)
            data = response["responses"][0]["partitions"][0]
            assert data["error_code"] == 0, data
            records = bytes(data["records"] or b"")
            if not records:
                assert offset == data["high_watermark"], (offset, data["high_watermark"])
                return out
            for pos, header in iter_batches(records):
                assert compute_crc(records, pos, header.size) == header.crc, f"bad CRC at offset {header.base_offset}"
                for record in decode_batch(records, pos).records:
                    sequence = int(record.value.split(b";", 1)[0].split(b"=")[1])
                    out.append((header.base_offset + record.offset_delta, sequence))
                offset = header.next_offset


def key_of(sequence: int) -> int:
    """The record key (as a number) the producer gives a sequence number."""
    return sequence % KEYS


def check_online(bootstrap: str, ledger: Ledger, *, compacted: bool = False) -> None:
    """Every acknowledged record exactly once, in order; the old log is a prefix of the new.

    Compacted: offsets only increase, and for every key the latest acknowledged record (or a
    later one of the same key) is there.
    """
    for partition in range(PARTITIONS):
        stored = fetch_all(bootstrap, partition)
        offsets = [o for o, _ in stored]
        sequences = [s for _, s in stored]
        assert len(set(sequences)) == len(sequences), f"partition {partition}: duplicated record"
        assert sequences == sorted(sequences), f"partition {partition}: records out of order"
        if compacted:
            assert offsets == sorted(set(offsets)), f"partition {partition}: offsets not increasing"
            latest_stored: dict[int, int] = {}
            for sequence in sequences:
                latest_stored[key_of(sequence)] = sequence
            with ledger.lock:
                latest_acked: dict[int, int] = {}
                for sequence in ledger.acked[partition]:
                    latest_acked[key_of(sequence)] = max(sequence, latest_acked.get(key_of(sequence), -1))
            lost = {k: v for k, v in latest_acked.items() if latest_stored.get(k, -1) < v}
            assert not lost, f"partition {partition}: latest acknowledged value lost for keys {sorted(lost)[:10]}"
            ledger.verified[partition] = stored
            continue
        assert offsets == list(range(len(stored))), f"partition {partition}: offsets not contiguous"
        previous = ledger.verified[partition]
        assert stored[: len(previous)] == previous, f"partition {partition}: verified records changed"
        with ledger.lock:
            missing = set(ledger.acked[partition]) - set(sequences)
        assert not missing, f"partition {partition}: acknowledged records lost: {sorted(missing)[:10]}"
        ledger.verified[partition] = stored


def _check_index_file(segment_path: Path, base_offset: int) -> None:
    """Each on-disk offset index entry points at the start of the batch it names."""
    index_path = segment_path.with_suffix(files.INDEX_SUFFIX)
    if not index_path.exists():
        return  # a missing index is rebuilt at load
    data = index_path.read_bytes()
    log_bytes = segment_path.read_bytes()
    for rel, position in OFFSET_ENTRY.iter_unpack(data[: len(data) - len(data) % OFFSET_ENTRY.size]):
        assert position + BATCH_HEADER.size <= len(log_bytes), f"{index_path}: entry past the log"
        header = BatchHeader(*BATCH_HEADER.unpack_from(log_bytes, position))
        assert header.last_offset == base_offset + rel, f"{index_path}: entry ({rel}, {position}) is stale"


def check_offline(crashed_dir: Path, *, compacted: bool = False) -> None:
    """Recover a copy of the crashed data dir and check log, indexes and checkpoints."""
    recovery = checkpoints.read_offsets(crashed_dir / files.RECOVERY_POINT_CHECKPOINT)
    watermarks = checkpoints.read_offsets(crashed_dir / files.REPLICATION_CHECKPOINT)
    starts = checkpoints.read_offsets(crashed_dir / files.LOG_START_OFFSET_CHECKPOINT)
    for partition in range(PARTITIONS):
        directory = crashed_dir / files.partition_dir_name(TOPIC, partition)
        if not directory.exists():
            continue
        key = (TOPIC, partition)
        segment_paths = sorted(directory.glob("*" + files.LOG_SUFFIX))
        bases = [int(p.name.split(".")[0]) for p in segment_paths]
        for path, base, following in zip(segment_paths, bases, bases[1:] + [None]):
            # Segments wholly below the recovery point are trusted at load: their indexes must be right.
            if following is not None and following <= recovery.get(key, 0):
                _check_index_file(path, base)
        log = PartitionLog.open(directory, LogConfig(segment_bytes=SEGMENT_BYTES), now_ms=int(time.time() * 1000),
                                clean_shutdown=False)
        try:
            leo = log.log_end_offset
            assert recovery.get(key, 0) <= leo, f"recovery point {recovery.get(key)} beyond LEO {leo}"
            assert watermarks.get(key, 0) <= leo and starts.get(key, 0) <= leo
            expected = 0
            for segment in log.segments:
                for pos, header in segment.batches_from(segment.base_offset):
                    data = segment.read_batch(pos, header)
                    assert compute_crc(data, 0, header.size) == header.crc
                    if compacted:  # the cleaner leaves gaps, never overlaps
                        assert header.base_offset >= expected, f"overlap at {header.base_offset}"
                    else:
                        assert header.base_offset == expected, f"gap or overlap at {header.base_offset}"
                    expected = header.next_offset
                    found = segment.translate_offset(header.base_offset)
                    assert found is not None and found[0] == pos, "index disagrees with the batches"
            assert expected == leo
        finally:
            log.close(flush=False)


# ----------------------------------------------------------------------------- the cycles


def create_topic(bootstrap: str, *, compacted: bool = False) -> None:
    configs = [{"name": "cleanup.policy", "value": "compact"},
               {"name": "min.cleanable.dirty.ratio", "value": "0.01"}] if compacted else []
    body = {"topics": [{"name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 1,
                        "assignments": [], "configs": configs}], "timeout_ms": 10_000, "validate_only": False}
    with WireClient(bootstrap) as client:
        result = client.request(CREATE_TOPICS, CREATE_TOPICS_VERSION, body)["topics"][0]
    assert result["error_code"] in (0, 36), result  # 36: TOPIC_ALREADY_EXISTS


def run_cycles(cycles: int, seed: int, *, flush_on_ack: bool = False, work_dir: Path | None = None,
               max_acks_per_cycle: int = 400, compacted: bool = False) -> Ledger:
    """Run the crash cycles; raises AssertionError on the first violation. Returns the ledger.

    `compacted`: the topic is cleanup.policy=compact and the cleaner runs every 50 ms, so
    kills also land in the middle of cleans and swaps.
    """
    rng = random.Random(seed)
    owned = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="kbroker-crash-")) if owned else Path(work_dir)
    overrides = {"log.segment.bytes": SEGMENT_BYTES, "log.index.interval.bytes": 1024,
                 "auto.create.topics.enable": "false"}
    if flush_on_ack:
        overrides["log.flush.on.ack"] = "true"
    if compacted:
        overrides["log.cleaner.backoff.ms"] = "50"
    ledger = Ledger()
    broker = KafkaBroker(overrides, data_dir=root / "data")
    try:
        broker.start()
        create_topic(broker.bootstrap_servers, compacted=compacted)
        for cycle in range(cycles):
            stop = threading.Event()
            target = ledger.acked_count() + rng.randint(1, max_acks_per_cycle)
            producer = threading.Thread(target=produce_until_killed,
                                        args=(broker.bootstrap_servers, ledger, rng.randrange(2**32), stop),
                                        name=f"crash-producer-{cycle}", daemon=True)
            producer.start()
            deadline = time.monotonic() + ACK_DEADLINE_S
            while ledger.acked_count() < target and producer.is_alive():
                assert time.monotonic() < deadline, "producer made no progress"
                time.sleep(0.001)  # polling the ack counter; the kill moment itself is random
            stop.set()  # from here on, connection errors are the expected effect of the kill
            broker.kill()
            producer.join(timeout=15)
            assert not producer.is_alive(), "producer thread stuck after the kill"
            assert not ledger.errors, ledger.errors
            copy = root / f"crashed-{cycle}"
            shutil.copytree(broker.log_dir, copy)
            try:
                check_offline(copy, compacted=compacted)
            finally:
                shutil.rmtree(copy, ignore_errors=True)
            broker.start()
            check_online(broker.bootstrap_servers, ledger, compacted=compacted)
            logger.info("cycle %d ok: acked=%d stored=%s", cycle, ledger.acked_count(),
                        [len(v) for v in ledger.verified.values()])
        return ledger
    except BaseException:
        logger.error("broker log tail:\n%s", "\n".join(list(broker.log_lines)[-40:]))
        raise
    finally:
        broker.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    parser.add_argument("--flush-on-ack", action="store_true", help="broker fsyncs before acknowledging")
    parser.add_argument("--compacted", action="store_true", help="compacted topic, cleaner running all the time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logger.info("crash cycles=%d seed=%d flush_on_ack=%s compacted=%s", args.cycles, args.seed,
                args.flush_on_ack, args.compacted)
    started = time.monotonic()
    ledger = run_cycles(args.cycles, args.seed, flush_on_ack=args.flush_on_ack, compacted=args.compacted)
    logger.info("all %d cycles passed in %.0fs: %d acknowledged records verified", args.cycles,
                time.monotonic() - started, ledger.acked_count())


if __name__ == "__main__":
    main()
