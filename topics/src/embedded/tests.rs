use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;
use crate::record::Headers;

fn record(i: u64) -> Record {
    let mut headers = Headers::new();
    headers.push("n", i.to_string());
    Record {
        key: Some(format!("k{i}").into_bytes()),
        headers,
        payload: format!("payload {i}").into_bytes(),
        timestamp_ms: i as i64,
    }
}

fn open(dir: &Path, partitions: Option<u32>) -> EmbeddedLog {
    EmbeddedLog::open(dir, TopicNames::default(), partitions).unwrap()
}

#[tokio::test]
async fn append_and_read_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Some(3));
    for p in 0..3 {
        let offsets = log.append(Topic::Events, Partition(p), (0..5).map(record).collect()).await.unwrap();
        assert_eq!(offsets, (0..5).map(Offset).collect::<Vec<_>>());
    }
    assert_eq!(log.end_offset(Topic::Events, Partition(1)).unwrap(), Offset(5));
    let from: Vec<_> = (0..3).map(|p| (Partition(p), Offset(2))).collect();
    let mut reader = log.reader(Topic::Events, &from).unwrap();
    let got = reader.poll(100, Duration::ZERO).await.unwrap();
    assert_eq!(got.len(), 9);
    for p in 0..3 {
        let offsets: Vec<u64> = got.iter().filter(|r| r.partition == Partition(p)).map(|r| r.offset.0).collect();
        assert_eq!(offsets, vec![2, 3, 4], "partition {p} in order from 2");
    }
    assert_eq!(got[0].record, record(got[0].offset.0));
    assert!(reader.poll(100, Duration::ZERO).await.unwrap().is_empty());
}

#[tokio::test]
async fn reads_are_fair_across_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Some(2));
    log.append(Topic::Events, Partition(0), (0..100).map(record).collect()).await.unwrap();
    log.append(Topic::Events, Partition(1), (0..100).map(record).collect()).await.unwrap();
    let mut reader = log.reader(Topic::Events, &[(Partition(0), Offset(0)), (Partition(1), Offset(0))]).unwrap();
    let got = reader.poll(10, Duration::ZERO).await.unwrap();
    assert_eq!(got.iter().filter(|r| r.partition == Partition(0)).count(), 5);
    assert_eq!(got.iter().filter(|r| r.partition == Partition(1)).count(), 5);
}

#[tokio::test]
async fn group_commit_shares_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Some(4)));
    let mut tasks = Vec::new();
    for i in 0..1000u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(
            async move { log.append(Topic::Events, Partition((i % 4) as u32), vec![record(i)]).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let flushes = log.stats().flushes.load(Ordering::Relaxed);
    assert_eq!(log.stats().appended.load(Ordering::Relaxed), 1000);
    assert!(flushes < 500, "1000 appends took {flushes} flushes");
    let total: u64 = (0..4).map(|p| log.end_offset(Topic::Events, Partition(p)).unwrap().0).sum();
    assert_eq!(total, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_wake_on_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path(), Some(1)));
    let mut reader = log.reader(Topic::Events, &[(Partition(0), Offset(0))]).unwrap();
    let writer = log.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.append(Topic::Events, Partition(0), vec![record(1)]).await.unwrap();
    });
    let started = Instant::now();
    let got = reader.poll(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    // Woken by the append, not by the 30 s timeout.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn memory_topics_keep_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Some(1));
    assert!(!Topic::Commands.is_durable_embedded());
    let offsets = log.append(Topic::Commands, Partition(0), (0..3).map(record).collect()).await.unwrap();
    assert_eq!(offsets, vec![Offset(0), Offset(1), Offset(2)]);
    let mut reader = log.reader(Topic::Commands, &[(Partition(0), Offset(1))]).unwrap();
    let got = reader.poll(10, Duration::ZERO).await.unwrap();
    assert_eq!(got.iter().map(|r| r.offset.0).collect::<Vec<_>>(), vec![1, 2]);

    let m = MemoryPartition::new(2);
    m.append((0..5).map(record).collect());
    assert_eq!(m.start(), Offset(3));
    assert_eq!(m.end(), Offset(5));
    // A reader behind the window starts at its start.
    let (from, got) = m.read(0, 10);
    assert_eq!(from, 3);
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn partition_count_is_kept_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), Some(3));
        log.append(Topic::Events, Partition(2), vec![record(0), record(1)]).await.unwrap();
        log.close().await.unwrap();
    }
    match EmbeddedLog::open(dir.path(), TopicNames::default(), Some(4)) {
        Err(LogError::PartitionCountMismatch { stored: 3, requested: 4, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a different partition count must be refused"),
    }
    let log = open(dir.path(), None);
    assert_eq!(log.layout().partitions, 3);
    // Offsets continue after a reopen.
    assert_eq!(log.end_offset(Topic::Events, Partition(2)).unwrap(), Offset(2));
    assert_eq!(log.append(Topic::Events, Partition(2), vec![record(2)]).await.unwrap(), vec![Offset(2)]);
}

#[tokio::test]
async fn unknown_partitions_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Some(2));
    assert!(matches!(
        log.append(Topic::Events, Partition(2), vec![record(0)]).await,
        Err(LogError::UnknownPartition { .. })
    ));
    assert!(log.reader(Topic::Events, &[(Partition(9), Offset(0))]).is_err());
}
