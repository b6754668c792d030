//! `stockroom log export`: moves an embedded log into Kafka topics, for a team that
//! outgrows one machine.
//!
//! `events` (the source of truth) and `dlq` are copied partition by partition, in
//! order, with keys, headers and timestamps unchanged (but for one header, see
//! [`portable`]); the state stores and views are
//! not copied (nodes on Kafka rebuild them from the log). Into empty topics, every
//! record lands at the offset it had, so position tokens stay meaningful.
//!
//! It is resumable: a partition whose Kafka copy ends with the record the embedded
//! log has at that offset is a copy cut short, and copying goes on from there. A
//! partition holding anything else is refused, unless `--force` says to append
//! after it. The topics are created (co-partitioned, with the embedded log's
//! partition count) when they do not exist; existing ones must have that count.

use std::time::Duration;

use anyhow::Context;
use stockroom_topics::events::COMMAND_OFFSET_HEADER;
use stockroom_topics::kafka::{self, KafkaLog, TopicSettings};
use stockroom_topics::{DumpedRecord, EmbeddedLog, EventLog, Offset, Partition, Record, Topic, TopicNames};

use crate::cli::{LogDumpArgs, LogExportArgs};

/// Records read and appended per round.
const BATCH: usize = 5_000;

pub async fn export(args: LogExportArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.join("log");
    anyhow::ensure!(dir.is_dir(), "there is no embedded log in {}", dir.display());
    let names = TopicNames::new(&args.kafka.topic_prefix);
    let source = EventLog::embedded(
        EmbeddedLog::open(&dir, names, None).with_context(|| format!("cannot open the log in {}", dir.display()))?,
    );
    let partitions = source.partitions(Topic::Events);
    let Some(config) = crate::serve::kafka_config(&args.kafka, "stockroom-export")? else {
        anyhow::bail!("`stockroom log export` needs --kafka BOOTSTRAP");
    };
    let settings = TopicSettings { partitions, replication: args.replication, extra: Vec::new() };
    let (layout, created) = kafka::create_topics(&config, &settings).await?;
    for name in &created {
        println!("created {name}");
    }
    anyhow::ensure!(
        layout.partitions == partitions,
        "the Kafka topics have {} partitions and the embedded log {partitions}; the SKU → partition \
         mapping depends on the count, so they must be equal",
        layout.partitions
    );
    let bootstrap = config.bootstrap.clone();
    let target =
        EventLog::kafka(KafkaLog::connect(config).await.with_context(|| format!("cannot use Kafka at {bootstrap}"))?);
    let mut total = 0;
    for topic in [Topic::Events, Topic::Dlq] {
        for p in 0..partitions {
            let copied = copy_partition(&source, &target, topic, Partition(p), args.force).await?;
            if copied > 0 {
                println!("{}/{p}: copied {copied} records", topic.suffix());
            }
            total += copied;
        }
    }
    target.close().await?;
    source.close().await?;
    println!("exported {total} records into {} ({partitions} partitions)", bootstrap);
    Ok(())
}

/// `stockroom log dump`: a topic of the embedded log as JSON lines on stdout.
pub async fn dump(args: LogDumpArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = args.data_dir.join("log");
    anyhow::ensure!(dir.is_dir(), "there is no embedded log in {}", dir.display());
    let log = EventLog::embedded(
        EmbeddedLog::open(&dir, TopicNames::new(&args.topic_prefix), None)
            .with_context(|| format!("cannot open the log in {} (is a node running on it?)", dir.display()))?,
    );
    let topic = match args.topic.as_str() {
        "dlq" => Topic::Dlq,
        "sources" => Topic::Sources,
        _ => Topic::Events,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for p in 0..log.partitions(topic) {
        let end = log.end_offset(topic, Partition(p)).await?;
        let mut reader = log.reader(topic, &[(Partition(p), Offset(0))])?;
        let mut next = 0;
        while next < end.0 {
            let batch = reader.poll(BATCH, Duration::from_secs(5)).await?;
            anyhow::ensure!(!batch.is_empty(), "{}/{p}: the log has no record at {next}", topic.suffix());
            for r in batch.iter().filter(|r| r.offset.0 < end.0) {
                serde_json::to_writer(&mut out, &DumpedRecord::of(r))?;
                out.write_all(b"\n")?;
            }
            next = batch.last().map_or(next, |r| r.offset.0 + 1);
        }
    }
    out.flush()?;
    drop(out);
    log.close().await?;
    Ok(())
}

/// Copies what `target` lacks of one partition; returns how many records it copied.
async fn copy_partition(
    source: &EventLog,
    target: &EventLog,
    topic: Topic,
    p: Partition,
    force: bool,
) -> anyhow::Result<u64> {
    let end = source.end_offset(topic, p).await?;
    let there = target.end_offset(topic, p).await?;
    let from = if there.0 == 0 {
        Offset(0)
    } else if there <= end && same_record(source, target, topic, p, Offset(there.0 - 1)).await? {
        there // an export cut short: go on
    } else if force {
        Offset(0)
    } else {
        anyhow::bail!(
            "{}/{}: the Kafka topic already holds {} records that are not a copy of this log; \
             refusing to write into it (--force appends after them)",
            topic.suffix(),
            p.0,
            there.0
        );
    };
    let mut copied = 0;
    let mut next = from.0;
    if next >= end.0 {
        return Ok(0);
    }
    let mut reader = source.reader(topic, &[(p, Offset(next))])?;
    while next < end.0 {
        let batch = reader.poll(BATCH, Duration::from_secs(5)).await?;
        anyhow::ensure!(!batch.is_empty(), "{}/{}: the embedded log has no record at {next}", topic.suffix(), p.0);
        let records: Vec<Record> = batch.iter().filter(|r| r.offset.0 < end.0).map(|r| portable(&r.record)).collect();
        next = batch.last().map_or(next, |r| r.offset.0 + 1);
        copied += records.len() as u64;
        target.append(topic, p, records).await?;
    }
    Ok(copied)
}

/// The record as Kafka should have it: unchanged, except for the offset of the command
/// that caused an event, which names a place in the embedded log's `commands` queue
/// (in memory, not exported). Left in, a command node on Kafka would take it for an
/// offset of its own `commands` topic and skip that many new commands.
fn portable(record: &Record) -> Record {
    let mut copy = record.clone();
    copy.headers = record
        .headers
        .iter()
        .filter(|(name, _)| *name != COMMAND_OFFSET_HEADER)
        .map(|(n, v)| (n.to_owned(), v.to_vec()))
        .collect();
    copy
}

/// Whether both logs hold the same record at `offset`.
async fn same_record(
    source: &EventLog,
    target: &EventLog,
    topic: Topic,
    p: Partition,
    offset: Offset,
) -> anyhow::Result<bool> {
    let mut a = source.reader(topic, &[(p, offset)])?;
    let mut b = target.reader(topic, &[(p, offset)])?;
    let a = a.poll(1, Duration::from_secs(5)).await?;
    let b = b.poll(1, Duration::from_secs(10)).await?;
    Ok(match (a.first(), b.first()) {
        (Some(a), Some(b)) => {
            a.offset == b.offset && a.record.key == b.record.key && a.record.payload == b.record.payload
        }
        _ => false,
    })
}
