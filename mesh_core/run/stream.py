"""A source-aligned product fed by a stream (Apache Kafka): each micro-batch is one product version.

A sensor keeps the consumer offsets as its cursor (Dagster stores it, not the consumer group):
each tick it asks the broker for every partition's high watermark and, when there is something
new, requests one run for the offset range [cursor, high) of each partition (at most
`max_messages` per partition), then moves the cursor. The run reads exactly that range, so a
retried run publishes the same batch, and the run key makes a repeated request a no-op.

Written against confluent-kafka's Consumer (list_topics, get_watermark_offsets, assign, poll);
`confluent_kafka` is imported only when a consumer is made, never when a code location loads.

    orders = stream_sensor("sales", "orders", topic="orders", consumer=lambda: kafka_consumer("mesh-sales"))

    @data_product(domain="sales", name="orders", ...)
    def orders():
        return pd.DataFrame([json.loads(m.value()) for m in read_micro_batch(kafka_consumer("mesh-sales"), "orders")])
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import dagster as dg

from mesh_core.declare.ref import ProductRef
from mesh_core.declare.tags import domain_tags
from mesh_core.errors import MeshError

BATCH_TAG = "mesh/stream_batch"
BOOTSTRAP_ENV = "MESH_KAFKA_BOOTSTRAP_SERVERS"


@dataclass(frozen=True)
class OffsetRange:
    """Messages [start, end) of one partition."""

    partition: int
    start: int
    end: int


def kafka_consumer(group_id: str, **settings: Any):
    """A confluent-kafka Consumer for the brokers in $MESH_KAFKA_BOOTSTRAP_SERVERS; offsets are never
    committed to Kafka (the sensor's cursor is the offset)."""
    from confluent_kafka import Consumer

    servers = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not servers:
        raise MeshError(f"A streaming product needs its brokers: set {BOOTSTRAP_ENV}, e.g. kafka-1:9092,kafka-2:9092.")
    return Consumer({"bootstrap.servers": servers, "group.id": group_id, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", **settings})


def next_batch(consumer, topic: str, cursor: Mapping[int, int], *, max_messages: int = 10_000,
               timeout: float = 10.0) -> tuple[list[OffsetRange], dict[int, int]]:
    """The offset ranges of the next micro-batch and the cursor after it (partition -> next offset)."""
    metadata = consumer.list_topics(topic, timeout=timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise MeshError(f"Topic '{topic}' is not on the brokers ({getattr(metadata.topics.get(topic), 'error', 'missing')}).")
    from confluent_kafka import TopicPartition

    ranges, after = [], dict(cursor)
    for partition in sorted(metadata.topics[topic].partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        start = max(cursor.get(partition, low), low)  # retention may have dropped what the cursor points at
        end = min(high, start + max_messages)
        if end > start:
            ranges.append(OffsetRange(partition, start, end))
            after[partition] = end
    return ranges, after


def read_batch(consumer, topic: str, ranges: list[OffsetRange], *, timeout: float = 60.0) -> list:
    """The messages of `ranges`, in partition then offset order; an error names the partition."""
    from confluent_kafka import TopicPartition

    wanted = {r.partition: r for r in ranges}
    consumer.assign([TopicPartition(topic, r.partition, r.start) for r in ranges])
    found: dict[int, list] = {r.partition: [] for r in ranges}
    deadline = time.monotonic() + timeout

    def short(partition: int) -> bool:  # the next offset still wanted from it is before its range's end
        following = found[partition][-1].offset() + 1 if found[partition] else wanted[partition].start
        return following < wanted[partition].end

    try:
        while any(short(p) for p in wanted):
            if time.monotonic() > deadline:
                raise MeshError(f"Read {sum(map(len, found.values()))} of {sum(r.end - r.start for r in ranges)} messages "
                                f"of topic '{topic}' in {timeout:.0f} s.")
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise MeshError(f"Kafka error on topic '{topic}' partition {message.partition()}: {message.error()}")
            batch = wanted.get(message.partition())
            if batch and batch.start <= message.offset() < batch.end:
                found[message.partition()].append(message)
    finally:
        consumer.close()
    return [message for partition in sorted(found) for message in found[partition]]


def read_micro_batch(consumer, topic: str, *, timeout: float = 60.0) -> list:
    """Inside a product: the messages of the micro-batch the stream sensor requested this run for."""
    tags = dg.AssetExecutionContext.get().run.tags
    if BATCH_TAG not in tags:
        raise MeshError(f"This run has no {BATCH_TAG} tag: a streaming product runs from its stream sensor, "
                        "which names the offsets to read.")
    batch = json.loads(tags[BATCH_TAG])
    return read_batch(consumer, topic, [OffsetRange(**r) for r in batch["ranges"]], timeout=timeout)


def stream_sensor(domain: str, product: str, *, topic: str, consumer: Callable[[], Any], max_messages: int = 10_000,
                  minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """A sensor that requests one run of `domain.product` per micro-batch of `topic`."""
    ref = ProductRef(domain, product)

    @dg.sensor(name=f"{domain}_{product}_stream", minimum_interval_seconds=minimum_interval_seconds,
               asset_selection=[ref.asset_key], default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Publishes each micro-batch of Kafka topic '{topic}' as a version of {ref}.")
    def _stream(context: dg.SensorEvaluationContext):
        cursor = {int(p): offset for p, offset in json.loads(context.cursor or "{}").items()}
        client = consumer()
        try:
            ranges, after = next_batch(client, topic, cursor, max_messages=max_messages)
        finally:
            client.close()
        if not ranges:
            return dg.SkipReason(f"No new messages on '{topic}' past offsets {cursor or 'the start'}.")
        batch = {"topic": topic, "ranges": [r.__dict__ for r in ranges]}
        context.update_cursor(json.dumps({str(p): offset for p, offset in sorted(after.items())}))
        return dg.RunRequest(run_key=f"{topic}:" + ",".join(f"{r.partition}@{r.start}-{r.end}" for r in ranges),
                             asset_selection=[ref.asset_key], tags={BATCH_TAG: json.dumps(batch), **domain_tags(domain)})

    return _stream
