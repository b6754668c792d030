//! `stockroom ingest`: sends a feed file to a node (or, with `--rerun`, asks it to run
//! the pipeline again over the source's kept rows), shows the run's progress, and
//! prints the finished run as JSON on its last line. Exits 0 when the run is done
//! (rejected rows do not fail it), non-zero when it failed or could not start.

use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::cli::IngestArgs;

pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let url = args.url.trim_end_matches('/');
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
    let authorized = |r: reqwest::RequestBuilder| match &args.token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let request = match &args.file {
        Some(file) if !args.rerun => {
            let content_type = content_type(file, args.format.as_deref())?;
            let body = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            client
                .post(format!("{url}/ingest/{}?mode={}", args.source, args.mode))
                .header("content-type", content_type)
                .body(body)
        }
        _ => client.post(format!("{url}/ingest/{}/rerun", args.source)),
    };
    let response = authorized(request).send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::ACCEPTED {
        anyhow::bail!("the node refused the run ({status}): {}", answer["detail"].as_str().unwrap_or("no detail"));
    }
    let run_id = answer["run_id"].as_str().context("the answer has no run_id")?.to_owned();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} rows  {per_sec}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let run = loop {
        let run: Value = authorized(client.get(format!("{url}/ingest/runs/{run_id}"))).send().await?.json().await?;
        bar.set_length(run["total"].as_u64().unwrap_or(0));
        bar.set_position(run["read"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "created {} updated {} unchanged {} rejected {}",
            run["created"], run["updated"], run["unchanged"], run["rejected"]
        ));
        if run["state"] != "running" {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    println!("{run}");
    if run["state"] != "done" {
        anyhow::bail!("run {run_id} failed: {}", run["error"].as_str().unwrap_or("no reason given"));
    }
    Ok(())
}

/// The feed's content type: from `--format`, else from the file's extension.
fn content_type(file: &std::path::Path, format: Option<&str>) -> anyhow::Result<&'static str> {
    let format = match format {
        Some(f) => f.to_owned(),
        None => match file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => "json".into(),
            Some("ndjson" | "jsonl") => "ndjson".into(),
            Some("csv") => "csv".into(),
            _ => anyhow::bail!("cannot tell the feed's format from {}; say --format json|ndjson|csv", file.display()),
        },
    };
    Ok(match format.as_str() {
        "json" => "application/json",
        "ndjson" => "application/x-ndjson",
        _ => "text/csv",
    })
}
