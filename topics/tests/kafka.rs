//! The Kafka backend against a real Apache Kafka broker (scripts/kafka.sh).
//!
//! Uses `STOCKROOM_KAFKA` if set, else starts the local broker with scripts/kafka.sh.
//! Every test uses its own topic prefix, so tests and runs do not see each other.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stockroom_topics::kafka::{KafkaConfig, KafkaLog, MembershipEvent, TopicSettings, create_topics};
use stockroom_topics::{EventLog, GroupConfig, Headers, Offset, Partition, Record, Topic, TopicNames};

fn bootstrap() -> String {
    if let Ok(b) = std::env::var("STOCKROOM_KAFKA") {
        return b;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka.sh");
    let status = std::process::Command::new(script).arg("start").status().expect("run scripts/kafka.sh");
    assert!(status.success(), "scripts/kafka.sh start failed");
    "127.0.0.1:9092".into()
}

fn config(prefix: &str) -> KafkaConfig {
    KafkaConfig::new(bootstrap(), TopicNames::new(prefix))
}

fn prefix(test: &str) -> String {
    format!("t{}-{test}", std::process::id())
}

fn record(key: &str, payload: &str) -> Record {
    let mut headers = Headers::new();
    headers.push("ce_type", "test.record");
    headers.push("ce_id", format!("id-{payload}"));
    Record {
        key: Some(key.as_bytes().to_vec()),
        headers,
        payload: payload.as_bytes().to_vec(),
        timestamp_ms: 1_700_000_000_000,
    }
}

async fn log(prefix: &str, partitions: u32) -> EventLog {
    let cfg = config(prefix);
    create_topics(&cfg, &TopicSettings { partitions, replication: None, extra: vec![] }).await.unwrap();
    EventLog::kafka(KafkaLog::connect(cfg).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_then_read_back_in_order_with_headers() {
    let log = log(&prefix("rw"), 3).await;
    assert_eq!(log.partitions(Topic::Events), 3);
    assert_eq!(log.partitions(Topic::Replay), 1);
    let p = Partition(1);
    assert_eq!(log.end_offset(Topic::Events, p).await.unwrap(), Offset(0));
    let offsets =
        log.append(Topic::Events, p, vec![record("a", "1"), record("b", "2"), record("a", "3")]).await.unwrap();
    assert_eq!(offsets, vec![Offset(0), Offset(1), Offset(2)]);
    let more = log.append(Topic::Events, p, (4..=100).map(|i| record("k", &i.to_string())).collect()).await.unwrap();
    assert_eq!(more.first(), Some(&Offset(3)));
    assert_eq!(more.last(), Some(&Offset(99)));
    assert_eq!(log.end_offset(Topic::Events, p).await.unwrap(), Offset(100));
    assert_eq!(log.start_offset(Topic::Events, p).await.unwrap(), Offset(0));

    let mut reader = log.reader(Topic::Events, &[(Partition(0), Offset(0)), (p, Offset(0))]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 100 && Instant::now() < deadline {
        got.extend(reader.poll(1000, Duration::from_millis(500)).await.unwrap());
    }
    assert_eq!(got.len(), 100);
    assert!(got.iter().enumerate().all(|(i, r)| r.partition == p && r.offset == Offset(i as u64)));
    assert_eq!(got[0].record, record("a", "1"));
    assert_eq!(got[2].record.headers.get_str("ce_id"), Some("id-3"));
    assert_eq!(reader.assignment(), vec![(Partition(0), Offset(0)), (p, Offset(100))]);

    // From an offset in the middle; and a seek back.
    let mut reader = log.reader(Topic::Events, &[(p, Offset(98))]).unwrap();
    let mut tail = Vec::new();
    while tail.len() < 2 && Instant::now() < deadline {
        tail.extend(reader.poll(10, Duration::from_millis(500)).await.unwrap());
    }
    assert_eq!(tail.iter().map(|r| r.offset.0).collect::<Vec<_>>(), [98, 99]);
    reader.seek(p, Offset(5)).unwrap();
    let again = reader.poll(1, Duration::from_secs(10)).await.unwrap();
    assert_eq!(again[0].offset, Offset(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_create_is_idempotent_and_refuses_skewed_topics() {
    let prefix = prefix("create");
    let cfg = config(&prefix);
    let settings = TopicSettings { partitions: 4, replication: None, extra: vec![] };
    let (layout, created) = create_topics(&cfg, &settings).await.unwrap();
    assert_eq!((layout.partitions, created.len()), (4, Topic::ALL.len()));
    // Again: nothing to create, and the existing count wins over the asked one.
    let (layout, created) = create_topics(&cfg, &TopicSettings { partitions: 9, ..settings.clone() }).await.unwrap();
    assert_eq!((layout.partitions, created.len()), (4, 0));

    // A deployment whose commands topic has another count is refused by name.
    let skew = format!("{prefix}-skew");
    let skew_cfg = config(&skew);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap()).create().unwrap();
    let name = format!("{skew}.commands");
    let topic = rdkafka::admin::NewTopic::new(&name, 2, rdkafka::admin::TopicReplication::Fixed(1));
    admin.create_topics([&topic], &rdkafka::admin::AdminOptions::new()).await.unwrap();
    let e = create_topics(&skew_cfg, &settings).await.unwrap_err().to_string();
    assert!(e.contains("co-partitioned") && e.contains(&name), "{e}");
    let e = KafkaLog::connect(skew_cfg).await.err().expect("refused").to_string();
    assert!(e.contains("co-partitioned"), "{e}");
    let e = KafkaLog::connect(config(&format!("{prefix}-none"))).await.err().expect("refused").to_string();
    assert!(e.contains("stockroom topics create"), "{e}");
}

async fn owned(m: &mut stockroom_topics::PartitionMembership, mine: &mut BTreeSet<u32>, wait: Duration) {
    let deadline = Instant::now() + wait;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline.into(), m.next()).await {
        match event {
            MembershipEvent::Assigned(ps) => mine.extend(ps.iter().map(|p| p.0)),
            MembershipEvent::Revoked(ps) => ps.iter().for_each(|p| {
                mine.remove(&p.0);
            }),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_shares_the_command_partitions() {
    let prefix = prefix("group");
    let log = log(&prefix, 4).await;
    let group = GroupConfig::new(format!("{prefix}-processors"));
    let mut a = log.membership(&group).unwrap();
    assert!(!a.reclaims_when_fenced());
    let (mut mine_a, mut mine_b) = (BTreeSet::new(), BTreeSet::new());
    owned(&mut a, &mut mine_a, Duration::from_secs(12)).await;
    assert_eq!(mine_a, BTreeSet::from([0, 1, 2, 3]), "a single member owns everything");

    let mut b = log.membership(&group).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(mine_a.len() == 2 && mine_b.len() == 2) && Instant::now() < deadline {
        tokio::select! {
            _ = owned(&mut a, &mut mine_a, Duration::from_secs(1)) => {}
            _ = owned(&mut b, &mut mine_b, Duration::from_secs(1)) => {}
        }
    }
    assert_eq!(mine_a.len() + mine_b.len(), 4, "a={mine_a:?} b={mine_b:?}");
    assert!(mine_a.is_disjoint(&mine_b), "a={mine_a:?} b={mine_b:?}");

    // A dynamic member that leaves hands its partitions over without waiting for
    // its session to expire.
    let left = Instant::now();
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(60);
    while mine_a.len() < 4 && Instant::now() < deadline {
        owned(&mut a, &mut mine_a, Duration::from_secs(1)).await;
    }
    assert_eq!(mine_a, BTreeSet::from([0, 1, 2, 3]), "the partitions of a member that left come back");
    assert!(left.elapsed() < group.session, "handed over on leave, not on expiry: {:?}", left.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_gets_its_partitions_back_and_a_silent_one_loses_them() {
    let prefix = prefix("static");
    let log = log(&prefix, 4).await;
    let session = Duration::from_secs(6);
    let member =
        |name: &str| GroupConfig { group: format!("{prefix}-processors"), instance: Some(name.to_owned()), session };
    let mut a = log.membership(&member("a")).unwrap();
    let mut b = log.membership(&member("b")).unwrap();
    let (mut mine_a, mut mine_b) = (BTreeSet::new(), BTreeSet::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(mine_a.len() == 2 && mine_b.len() == 2) && Instant::now() < deadline {
        tokio::select! {
            _ = owned(&mut a, &mut mine_a, Duration::from_secs(1)) => {}
            _ = owned(&mut b, &mut mine_b, Duration::from_secs(1)) => {}
        }
    }
    assert_eq!((mine_a.len(), mine_b.len()), (2, 2), "a={mine_a:?} b={mine_b:?}");
    let before = mine_b.clone();

    // b restarts (same instance id) within its session: it gets the same partitions
    // back and a keeps its own throughout — no rebalance of the others.
    drop(b);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut b = log.membership(&member("b")).unwrap();
    let mut again = BTreeSet::new();
    owned(&mut b, &mut again, Duration::from_secs(4)).await;
    owned(&mut a, &mut mine_a, Duration::from_millis(100)).await;
    assert_eq!(again, before, "the restarted static member owns what it owned");
    assert_eq!(mine_a.len(), 2, "the other member kept its partitions: {mine_a:?}");

    // b goes silent for good: after its session, its partitions move to a.
    drop(b);
    let gone = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while mine_a.len() < 4 && Instant::now() < deadline {
        owned(&mut a, &mut mine_a, Duration::from_secs(1)).await;
    }
    assert_eq!(mine_a, BTreeSet::from([0, 1, 2, 3]), "a silent static member's partitions move");
    assert!(gone.elapsed() >= session - Duration::from_secs(2), "moved on expiry: {:?}", gone.elapsed());
}
