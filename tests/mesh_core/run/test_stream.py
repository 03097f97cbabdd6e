"""A streaming source domain: the sensor's cursor is the consumer offset, each micro-batch one run.

No Kafka broker can run here, so the consumer is a stand-in for confluent_kafka.Consumer with
the same methods, returning confluent-kafka's own Message, TopicPartition and metadata objects."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
from confluent_kafka import KafkaError, Message
from confluent_kafka.admin import ClusterMetadata, PartitionMetadata, TopicMetadata

from mesh_core import OffsetRange, read_micro_batch, stream_sensor
from mesh_core.errors import MeshError
from mesh_core.run.stream import next_batch

TOPIC = "orders"


class StandInConsumer:
    """The part of confluent_kafka.Consumer Mesh uses, over an in-memory log per partition."""

    def __init__(self, log: dict[int, list[bytes]], low: dict[int, int] | None = None, error_at: int | None = None):
        self.log, self.low, self.error_at = log, low or {}, error_at
        self.queue: list[Message] = []
        self.closed = False

    def list_topics(self, topic=None, timeout=-1):
        metadata = ClusterMetadata()
        if topic == TOPIC:
            meta = TopicMetadata()
            meta.topic, meta.partitions = TOPIC, {p: PartitionMetadata() for p in self.log}
            metadata.topics = {TOPIC: meta}
        return metadata

    def get_watermark_offsets(self, partition, timeout=None, cached=False):
        return self.low.get(partition.partition, 0), len(self.log[partition.partition])

    def assign(self, partitions):
        self.queue = [Message(topic=TOPIC, partition=tp.partition, offset=offset, value=self.log[tp.partition][offset])
                      for tp in partitions for offset in range(tp.offset, len(self.log[tp.partition]))]
        if self.error_at is not None:
            self.queue.insert(self.error_at, Message(topic=TOPIC, partition=0, error=KafkaError(KafkaError._TRANSPORT)))

    def poll(self, timeout=None):
        return self.queue.pop(0) if self.queue else None

    def close(self):
        self.closed = True


def events(n: int, partition: int) -> list[bytes]:
    return [json.dumps({"order_id": partition * 1000 + i, "amount": i}).encode() for i in range(n)]


def test_the_next_batch_starts_at_the_cursor_and_is_bounded_per_partition():
    consumer = StandInConsumer({0: events(5, 0), 1: events(3, 1)}, low={1: 1})
    ranges, cursor = next_batch(consumer, TOPIC, {0: 2}, max_messages=2)
    assert ranges == [OffsetRange(0, 2, 4), OffsetRange(1, 1, 3)]  # partition 1 starts at its low watermark
    assert cursor == {0: 4, 1: 3}
    assert next_batch(consumer, TOPIC, {0: 5, 1: 3})[0] == []
    with pytest.raises(MeshError, match="Topic 'payments' is not on the brokers"):
        next_batch(consumer, "payments", {})


def test_the_sensor_requests_one_run_per_micro_batch_and_moves_its_cursor():
    log = {0: events(4, 0), 1: events(2, 1)}
    sensor = stream_sensor("sales", "orders", topic=TOPIC, consumer=lambda: StandInConsumer(log), max_messages=3)
    context = dg.build_sensor_context()
    request = sensor(context)
    assert json.loads(context.cursor) == {"0": 3, "1": 2}
    assert request.run_key == "orders:0@0-3,1@0-2"
    assert request.asset_selection == [dg.AssetKey(["sales", "orders"])]

    log[0].append(b'{"order_id": 99, "amount": 9}')  # one more message arrives
    again = dg.build_sensor_context(cursor=context.cursor)
    second = sensor(again)
    assert second.run_key == "orders:0@3-5" and json.loads(again.cursor) == {"0": 5, "1": 2}
    idle = dg.build_sensor_context(cursor=again.cursor)
    assert isinstance(sensor(idle), dg.SkipReason)


def test_a_run_reads_exactly_the_batch_its_request_names():
    log = {0: events(4, 0), 1: events(2, 1)}
    sensor = stream_sensor("sales", "orders", topic=TOPIC, consumer=lambda: StandInConsumer(log), max_messages=3)
    request = sensor(dg.build_sensor_context())

    @dg.asset(key=["sales", "orders"])
    def orders() -> pd.DataFrame:
        return pd.DataFrame([json.loads(m.value()) for m in read_micro_batch(StandInConsumer(log), TOPIC)])

    result = dg.materialize([orders], tags=request.tags)
    frame = result.output_for_node("sales__orders")
    assert frame["order_id"].tolist() == [0, 1, 2, 1000, 1001]  # offsets 0-2 of partition 0, 0-1 of partition 1

    failed = dg.materialize([orders], raise_on_error=False)  # not started by the sensor: no batch to read
    assert not failed.success
    assert "has no mesh/stream_batch tag" in str(failed.get_step_failure_events()[0].event_specific_data.error)


def test_a_broker_error_names_the_partition():
    consumer = StandInConsumer({0: events(3, 0)}, error_at=1)
    with pytest.raises(MeshError, match="Kafka error on topic 'orders' partition 0"):
        from mesh_core.run.stream import read_batch
        read_batch(consumer, TOPIC, [OffsetRange(0, 0, 3)])
    assert consumer.closed
