#!/usr/bin/env python3
"""Dump a Kafka topic as JSON lines, the way any standard client sees it.

    scripts/kafka_dump.py BOOTSTRAP TOPIC

One line per record: {"partition", "offset", "key", "headers": {name: value}, "payload"}.
Uses kafka-python (PyPI), an independent implementation of the Kafka protocol:
proof that Stockroom's records are plain Kafka records with CloudEvents headers.
(kcat from Debian is built on librdkafka 2.0.2, which cannot parse the ApiVersions
answer of Tansu 0.6.0, our test broker; the Python client can.)
"""
import json
import sys

from kafka import KafkaConsumer, TopicPartition


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    end = consumer.end_offsets(partitions)
    remaining = {tp.partition: end[tp] for tp in partitions}
    for message in consumer:
        print(json.dumps({
            "partition": message.partition,
            "offset": message.offset,
            "key": message.key.decode("utf-8", "replace") if message.key is not None else None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in (message.headers or [])},
            "payload": message.value.decode("utf-8", "replace"),
        }))
        if message.offset + 1 >= remaining[message.partition]:
            remaining[message.partition] = 0
        if all(offset == 0 or offset is None for offset in remaining.values()):
            break


if __name__ == "__main__":
    main()
