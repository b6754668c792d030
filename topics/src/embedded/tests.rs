use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;
use crate::record::{Headers, StoredRecord};

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

/// Reads every record of `topic`/`partition` from `from`.
async fn read_all(log: &EmbeddedLog, partition: u32, from: u64) -> Vec<StoredRecord> {
    let mut reader = log.reader(Topic::Events, &[(Partition(partition), Offset(from))]).unwrap();
    let mut all = Vec::new();
    loop {
        let got = reader.poll(1000, Duration::ZERO).await.unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

fn events_file(dir: &Path, partition: u32) -> PathBuf {
    let layout = TopicLayout { names: TopicNames::default(), partitions: 1 };
    dir.join(partition_file(&layout, Topic::Events, Partition(partition)))
}

#[tokio::test]
async fn readers_seek_anywhere_across_index_strides() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Some(1));
    // Several appends, so frames of one partition come from several groups.
    for chunk in (0..300u64).collect::<Vec<_>>().chunks(70) {
        log.append(Topic::Events, Partition(0), chunk.iter().map(|i| record(*i)).collect()).await.unwrap();
    }
    for from in [0, 1, 63, 64, 65, 130, 299, 300] {
        let got = read_all(&log, 0, from).await;
        assert_eq!(got.len() as u64, 300 - from, "from {from}");
        for r in &got {
            assert_eq!(r.record, record(r.offset.0));
        }
    }
    // Back and forth within one reader.
    let mut reader = log.reader(Topic::Events, &[(Partition(0), Offset(200))]).unwrap();
    assert_eq!(reader.poll(3, Duration::ZERO).await.unwrap()[0].offset, Offset(200));
    reader.seek(Partition(0), Offset(7));
    let got = reader.poll(2, Duration::ZERO).await.unwrap();
    assert_eq!(got.iter().map(|r| r.offset.0).collect::<Vec<_>>(), vec![7, 8]);
    assert_eq!(got[1].record, record(8));
    reader.seek(Partition(0), Offset(250));
    assert_eq!(reader.poll(1, Duration::ZERO).await.unwrap()[0].record, record(250));
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_appends_continue_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), Some(2));
        log.append(Topic::Events, Partition(1), (0..10).map(record).collect()).await.unwrap();
        log.close().await.unwrap();
    }
    let path = events_file(dir.path(), 1);
    let whole = std::fs::read(&path).unwrap();
    // A crash mid-write: the last frame is cut short.
    std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
    {
        let log = open(dir.path(), None);
        assert_eq!(log.end_offset(Topic::Events, Partition(1)).unwrap(), Offset(9));
        let got = read_all(&log, 1, 0).await;
        assert_eq!(got.iter().map(|r| r.record.clone()).collect::<Vec<_>>(), (0..9).map(record).collect::<Vec<_>>());
        assert_eq!(log.append(Topic::Events, Partition(1), vec![record(9)]).await.unwrap(), vec![Offset(9)]);
        log.close().await.unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), whole, "the re-append rewrote exactly the cut frame");
    // Garbage after the last frame (a header of zeros and then junk) is cut too.
    let mut junk = whole.clone();
    junk.extend_from_slice(&[0xAB; 40]);
    std::fs::write(&path, &junk).unwrap();
    let log = open(dir.path(), None);
    assert_eq!(log.end_offset(Topic::Events, Partition(1)).unwrap(), Offset(10));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole.len() as u64);
}

#[tokio::test]
async fn a_frame_failing_its_crc_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), Some(1));
        for i in 0..4 {
            log.append(Topic::Events, Partition(0), vec![record(i)]).await.unwrap();
        }
        log.close().await.unwrap();
    }
    let path = events_file(dir.path(), 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // one bit of the last record's payload
    std::fs::write(&path, &bytes).unwrap();
    let log = open(dir.path(), None);
    assert_eq!(log.end_offset(Topic::Events, Partition(0)).unwrap(), Offset(3));
    assert_eq!(read_all(&log, 0, 0).await.len(), 3);
}

#[tokio::test]
async fn a_sled_log_of_an_earlier_version_is_copied_into_files() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The layout of the sled log: a meta tree with the count, a tree per partition
        // keyed by the big-endian offset, each value a record in the codec's form.
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("__stockroom_meta").unwrap().insert("partitions", &2u32.to_be_bytes()).unwrap();
        let names = TopicNames::default();
        for p in 0..2u32 {
            let tree = db.open_tree(format!("{}/{p}", names.name(Topic::Events))).unwrap();
            for i in 0..(50 + p as u64) {
                tree.insert(i.to_be_bytes(), codec::encode(&record(i))).unwrap();
            }
        }
        db.flush().unwrap();
    }
    let log = open(dir.path(), None);
    assert_eq!(log.layout().partitions, 2);
    for p in 0..2u32 {
        let got = read_all(&log, p, 0).await;
        assert_eq!(got.len() as u64, 50 + p as u64);
        assert!(got.iter().all(|r| r.record == record(r.offset.0)));
    }
    assert!(!dir.path().join("db").exists() && !dir.path().join("conf").exists(), "sled's files are removed");
    assert_eq!(log.append(Topic::Events, Partition(1), vec![record(51)]).await.unwrap(), vec![Offset(51)]);
    log.close().await.unwrap();
    drop(log);
    let log = open(dir.path(), None);
    assert_eq!(log.end_offset(Topic::Events, Partition(1)).unwrap(), Offset(52));
}

#[tokio::test]
async fn a_damaged_meta_file_is_an_error_not_a_new_log() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path(), Some(2)).close().await.unwrap();
    std::fs::write(dir.path().join(META_FILE), "something else").unwrap();
    assert!(EmbeddedLog::open(dir.path(), TopicNames::default(), None).is_err());
}

#[tokio::test]
async fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), Some(1));
    match EmbeddedLog::open(dir.path(), TopicNames::default(), None) {
        Err(e) => assert!(e.to_string().contains("in use by another process"), "{e}"),
        Ok(_) => panic!("a second opening of an open log must be refused"),
    }
    log.close().await.unwrap();
    drop(log);
    open(dir.path(), None);
}

#[tokio::test]
async fn a_sled_log_under_another_prefix_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("__stockroom_meta").unwrap().insert("partitions", &1u32.to_be_bytes()).unwrap();
        let other = TopicNames::new("other");
        let tree = db.open_tree(format!("{}/0", other.name(Topic::Events))).unwrap();
        tree.insert(0u64.to_be_bytes(), codec::encode(&record(0))).unwrap();
        db.flush().unwrap();
    }
    match EmbeddedLog::open(dir.path(), TopicNames::default(), None) {
        Err(e) => assert!(e.to_string().contains("--topic-prefix"), "{e}"),
        Ok(_) => panic!("a sled log of another prefix must not be converted into an empty one"),
    }
    assert!(dir.path().join("db").exists(), "sled's files are kept");
    assert!(!dir.path().join(META_FILE).exists());
    // With its own prefix it converts.
    let log = EmbeddedLog::open(dir.path(), TopicNames::new("other"), None).unwrap();
    assert_eq!(log.end_offset(Topic::Events, Partition(0)).unwrap(), Offset(1));
}
