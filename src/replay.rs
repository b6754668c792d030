//! `stockroom replay --view catalog`: asks every query node to rebuild a view, and
//! shows their progress until each is done.
//!
//! - On Kafka (`--kafka`), the request goes to the `replay` topic, and the nodes'
//!   reports are read back from it: the bar follows every node that reports on this
//!   request, and the command ends once each has swapped its rebuilt view in and no
//!   other has started reporting for `--settle`.
//! - On the embedded log the one node holds the log open, so the request goes
//!   through its `POST /admin/replay` (its address is in `DIR/serve.addr`, or
//!   `--url`) and progress comes from its `GET /admin/views`. With no node running,
//!   the request is written into the log itself, and the node rebuilds when it starts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use stockroom_topics::replay::{RebuildProgress, RebuildState, ReplayMessage, VIEWS};
use stockroom_topics::{EmbeddedLog, EventLog, KafkaLog, Offset, Partition, Topic, TopicNames};

use crate::admin::{publish_rebuild, state_name};
use crate::cli::ReplayArgs;

/// The file where `serve` writes the address it listens on.
pub const ADDR_FILE: &str = "serve.addr";

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if !VIEWS.contains(&args.view.as_str()) {
        bail!("unknown view {:?}; views that can be rebuilt: {}", args.view, VIEWS.join(", "));
    }
    if let Some(config) = crate::serve::kafka_config(&args.kafka, "stockroom-replay")? {
        let bootstrap = config.bootstrap.clone();
        let log = EventLog::kafka(
            KafkaLog::connect(config).await.with_context(|| format!("cannot use Kafka at {bootstrap}"))?,
        );
        let request = publish_rebuild(&log, &args.view, "cli").await?;
        println!("requested a rebuild of {} (request {request} on the replay topic)", args.view);
        if !args.no_wait {
            follow_topic(&log, &args, request).await?;
        }
        log.close().await?;
        return Ok(());
    }
    let url = match &args.url {
        Some(url) => Some(url.trim_end_matches('/').to_owned()),
        None => std::fs::read_to_string(args.data_dir.join(ADDR_FILE)).ok().map(|a| format!("http://{}", a.trim())),
    };
    if let Some(url) = url {
        match request_over_http(&url, &args).await {
            Ok(request) => {
                println!("requested a rebuild of {} from {url} (request {request})", args.view);
                if !args.no_wait {
                    follow_http(&url, &args, request).await?;
                }
                return Ok(());
            }
            Err(e) if args.url.is_some() => return Err(e),
            Err(e) => {
                eprintln!("the node in {} does not answer ({e:#}); writing into the log", args.data_dir.display())
            }
        }
    }
    let dir = args.data_dir.join("log");
    anyhow::ensure!(dir.is_dir(), "there is no embedded log in {}", dir.display());
    let log = EventLog::embedded(
        EmbeddedLog::open(&dir, TopicNames::new(&args.kafka.topic_prefix), None)
            .with_context(|| format!("cannot open the log in {} (a node holds it? pass --url)", dir.display()))?,
    );
    let request = publish_rebuild(&log, &args.view, "cli").await?;
    log.close().await?;
    println!(
        "no node is running on {}: request {request} is in the log, and the {} is rebuilt when `stockroom serve` starts",
        args.data_dir.display(),
        args.view
    );
    Ok(())
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} events  {per_sec}  ETA {eta}  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Follows the nodes' reports on the replay topic until every node that reported is done.
async fn follow_topic(log: &EventLog, args: &ReplayArgs, request: u64) -> anyhow::Result<()> {
    let mut reader = log.reader(Topic::Replay, &[(Partition(0), Offset(request + 1))])?;
    let started = Instant::now();
    let bar = bar();
    let mut nodes: BTreeMap<String, RebuildProgress> = BTreeMap::new();
    let mut last_change = Instant::now();
    loop {
        for record in reader.poll(100, Duration::from_millis(250)).await? {
            if let Ok(ReplayMessage::Progress(p)) = ReplayMessage::decode(&record) {
                // A rebuild that was running when ours arrived answers ours too.
                if p.view == args.view && p.request <= request && request <= p.answers {
                    if !nodes.contains_key(&p.node) || nodes[&p.node].state != p.state {
                        last_change = Instant::now();
                    }
                    nodes.insert(p.node.clone(), p);
                }
            }
        }
        let (read, total) = nodes.values().fold((0, 0), |(r, t), p| (r + p.read, t + p.total));
        bar.set_length(total);
        bar.set_position(read);
        let done = nodes.values().filter(|p| p.state != RebuildState::Rebuilding).count();
        bar.set_message(format!("{done}/{} nodes done", nodes.len()));
        if !nodes.is_empty() && done == nodes.len() && last_change.elapsed() >= args.settle {
            break;
        }
        if started.elapsed() > args.timeout {
            bar.abandon();
            bail!("gave up after {:?}: {done} of {} nodes reported done", args.timeout, nodes.len());
        }
    }
    bar.finish();
    report(nodes.values().map(|p| (p.node.clone(), p.state, p.read)))
}

fn report(nodes: impl Iterator<Item = (String, RebuildState, u64)>) -> anyhow::Result<()> {
    let mut failed = 0;
    for (node, state, read) in nodes {
        println!("{node}: {} ({read} events)", state_name(state));
        failed += usize::from(state == RebuildState::Failed);
    }
    anyhow::ensure!(failed == 0, "{failed} node(s) failed to rebuild; their old view still serves (see their logs)");
    Ok(())
}

fn http_client(args: &ReplayArgs) -> anyhow::Result<(reqwest::Client, Option<String>)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    Ok((client, args.token.clone()))
}

fn authorized(request: reqwest::RequestBuilder, token: &Option<String>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => request.bearer_auth(t),
        None => request,
    }
}

async fn request_over_http(url: &str, args: &ReplayArgs) -> anyhow::Result<u64> {
    let (client, token) = http_client(args)?;
    let answer =
        authorized(client.post(format!("{url}/admin/replay")), &token).json(&json!({"view": args.view})).send().await?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if status != reqwest::StatusCode::ACCEPTED {
        bail!("{url} answered {status}: {}", body.get("detail").and_then(Value::as_str).unwrap_or("no detail"));
    }
    body["request"].as_u64().context("the answer has no request number")
}

/// Follows the node's `GET /admin/views` until its rebuild of our request is done.
async fn follow_http(url: &str, args: &ReplayArgs, request: u64) -> anyhow::Result<()> {
    let (client, token) = http_client(args)?;
    let started = Instant::now();
    let bar = bar();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let views: Value = match authorized(client.get(format!("{url}/admin/views")), &token).send().await {
            Ok(a) if a.status().is_success() => a.json().await.unwrap_or(Value::Null),
            _ => Value::Null, // restarting, or busy: ask again
        };
        let rebuild = views["views"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == args.view.as_str()))
            .map(|v| v["rebuild"].clone())
            .unwrap_or(Value::Null);
        // A rebuild that was running when ours arrived answers ours too.
        let ours = rebuild["request"].as_u64().is_some_and(|r| r <= request)
            && rebuild["answers"].as_u64().is_some_and(|a| a >= request);
        if ours {
            bar.set_length(rebuild["total"].as_u64().unwrap_or(0));
            bar.set_position(rebuild["read"].as_u64().unwrap_or(0));
            let state = rebuild["state"].as_str().unwrap_or("");
            bar.set_message(state.to_owned());
            if state == "done" || state == "failed" {
                bar.finish();
                let read = rebuild["read"].as_u64().unwrap_or(0);
                let state = if state == "done" { RebuildState::Done } else { RebuildState::Failed };
                return report(std::iter::once((url.to_owned(), state, read)));
            }
        }
        if started.elapsed() > args.timeout {
            bar.abandon();
            bail!("gave up after {:?}; the rebuild goes on in the node (see GET {url}/admin/views)", args.timeout);
        }
    }
}
