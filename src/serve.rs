//! `stockroom serve`: every part in one process, meeting only through the log.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use axum::Router;
use stockroom_command::{CommandApi, CommandClient, Processor, ProcessorConfig, StateStore};
use stockroom_query::{Catalog, CatalogProjector, QueryApi};
use stockroom_topics::{EmbeddedLog, EventLog, Partition, Topic, TopicNames};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;
use utoipa::OpenApi;

use crate::cli::ServeArgs;
use crate::ops;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data = &args.data_dir;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let log = EmbeddedLog::open(&data.join("log"), TopicNames::new(&args.topic_prefix), args.partitions)
        .with_context(|| format!("cannot open the event log in {}", data.join("log").display()))?;
    let log = EventLog::embedded(log);
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();

    // Write side.
    let state = StateStore::open(&data.join("state")).context("cannot open the state store")?;
    let processor = Processor::new(
        log.clone(),
        state.clone(),
        ProcessorConfig { node_id: args.node_id.clone(), ..ProcessorConfig::default() },
    );
    processor.spawn((0..log.partitions(Topic::Commands)).map(Partition), &tracker, cancel.clone());
    let client = CommandClient::start(log.clone(), &args.node_id, &tracker, cancel.clone()).await?;
    let command_api = CommandApi { client, write_timeout: args.write_timeout };

    // Read side.
    let catalog = Arc::new(Catalog::open(&data.join("catalog")).context("cannot open the catalog index")?);
    let (projector, applied) = CatalogProjector::new(log.clone(), catalog.clone())?;
    let projector_stats = projector.stats();
    tracker.spawn(projector.run(cancel.clone()));
    let query_api = QueryApi { catalog, applied, read_timeout: args.read_timeout };

    let health = processor.health();
    let checks: Vec<ops::Check> = vec![
        ("command-processor", Arc::new(move || health.ready())),
        ("catalog", Arc::new(move || projector_stats.caught_up.load(Ordering::Relaxed))),
    ];
    let app = app(command_api, query_api, checks);

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    info!(%addr, data_dir = %data.display(), partitions = log.partitions(Topic::Events), "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;

    info!("shutting down");
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    log.close().await?;
    state.flush()?;
    info!("stopped");
    Ok(())
}

/// The whole HTTP surface of an all-in-one node.
pub fn app(command: CommandApi, query: QueryApi, checks: Vec<ops::Check>) -> Router {
    let mut spec = stockroom_command::CommandApiDoc::openapi();
    spec.merge(stockroom_query::QueryApiDoc::openapi());
    spec.info.title = "Stockroom".into();
    spec.info.description = Some(
        "Event-sourced inventory and product catalog. Writes are commands; reads come from views built from the \
         event log. Errors are application/problem+json."
            .into(),
    );
    spec.info.version = env!("CARGO_PKG_VERSION").into();
    Router::new()
        .merge(stockroom_command::router(command))
        .merge(stockroom_query::router(query))
        .merge(ops::router(spec, checks))
        .fallback(ops::not_found)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
