//! Kill -9 while appending: after reopening, every acknowledged record is there,
//! with the right content, and each partition is contiguous.
//!
//! The test re-runs its own binary as the child (`STOCKROOM_CRASH_CHILD=dir`), which
//! appends batches forever and prints each acknowledged offset on stdout.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stockroom_topics::{EmbeddedLog, Offset, Partition, Record, Topic, TopicNames};

const PARTITIONS: u32 = 4;

fn record(p: u32, i: u64) -> Record {
    Record {
        key: Some(vec![p as u8]),
        headers: Default::default(),
        payload: format!("{p}/{i}").into_bytes(),
        timestamp_ms: 0,
    }
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("STOCKROOM_CRASH_CHILD") else {
        return; // only meaningful as the child of the test below
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let log =
            std::sync::Arc::new(EmbeddedLog::open(dir.as_ref(), TopicNames::default(), Some(PARTITIONS)).unwrap());
        let mut tasks = Vec::new();
        for p in 0..PARTITIONS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = log.end_offset(Topic::Events, Partition(p)).unwrap().0;
                loop {
                    let batch: Vec<Record> = (i..i + 7).map(|n| record(p, n)).collect();
                    let offsets = log.append(Topic::Events, Partition(p), batch).await.unwrap();
                    for o in &offsets {
                        println!("{p} {}", o.0);
                    }
                    i = offsets.last().unwrap().0 + 1;
                }
            }));
        }
        // The appenders never end; the parent kills this process.
        futures_join(tasks).await;
    });
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

#[test]
fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked = vec![0u64; PARTITIONS as usize];
    for round in 0..4u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STOCKROOM_CRASH_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let started = Instant::now();
        let budget = Duration::from_millis(300 + 170 * round);
        let mut seen = 0;
        while started.elapsed() < budget || seen < 50 {
            let Some(Ok(line)) = lines.next() else { break };
            let mut parts = line.split_whitespace();
            let (Some(p), Some(o)) = (parts.next(), parts.next()) else { continue };
            let (Ok(p), Ok(o)) = (p.parse::<usize>(), o.parse::<u64>()) else { continue };
            acked[p] = acked[p].max(o + 1);
            seen += 1;
        }
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let log = EmbeddedLog::open(dir.path(), TopicNames::default(), None).unwrap();
            for p in 0..PARTITIONS {
                let end = log.end_offset(Topic::Events, Partition(p)).unwrap().0;
                assert!(
                    end >= acked[p as usize],
                    "round {round}: partition {p} ends at {end}, {} acknowledged",
                    acked[p as usize]
                );
                let mut reader = log.reader(Topic::Events, &[(Partition(p), Offset(0))]).unwrap();
                let mut expected = 0u64;
                loop {
                    let got = reader.poll(10_000, Duration::ZERO).await.unwrap();
                    if got.is_empty() {
                        break;
                    }
                    for r in got {
                        assert_eq!(r.offset.0, expected, "contiguous");
                        assert_eq!(r.record, record(p, expected));
                        expected += 1;
                    }
                }
                assert_eq!(expected, end);
            }
            log.close().await.unwrap();
        });
    }
    assert!(acked.iter().all(|a| *a > 0), "the child acknowledged appends on every partition");
}
