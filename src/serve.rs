//! `stockroom serve`: every part in one process, meeting only through the log.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use axum::Router;
use stockroom_command::{CommandApi, CommandClient, Processor, ProcessorConfig, StateStore};
use stockroom_query::stock::{StockApi, StockBook, StockProjector};
use stockroom_query::{CatalogProjector, CatalogSlot, OrderBook, QueryApi, Rebuilder};
use stockroom_topics::kafka::{self, KafkaConfig, KafkaLog, TopicSettings};
use stockroom_topics::{EmbeddedLog, EventLog, Topic, TopicNames};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;
use utoipa::OpenApi;

use crate::cli::{KafkaArgs, ServeArgs, TopicsCreateArgs};
use crate::metrics::{self, Metrics};
use crate::{admin, auth, limits, ops};

/// Which parts a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `serve`: everything.
    All,
    /// `command`: the write API and the processors of this node's partitions.
    Command,
    /// `query`: the projector and the read API.
    Query,
}

impl Role {
    fn writes(self) -> bool {
        self != Role::Query
    }
    fn reads(self) -> bool {
        self != Role::Command
    }
}

pub(crate) fn kafka_config(args: &KafkaArgs, node_id: &str) -> anyhow::Result<Option<KafkaConfig>> {
    let Some(bootstrap) = &args.kafka else { return Ok(None) };
    let mut config = KafkaConfig::new(bootstrap, TopicNames::new(&args.topic_prefix));
    config.client_id = node_id.to_owned();
    for setting in &args.kafka_config {
        match setting.split_once('=') {
            Some((key, value)) => config.extra.push((key.trim().to_owned(), value.trim().to_owned())),
            None => config = config.with_properties_file(std::path::Path::new(setting))?,
        }
    }
    Ok(Some(config))
}

async fn open_log(args: &ServeArgs, role: Role) -> anyhow::Result<EventLog> {
    let data = &args.data_dir;
    match kafka_config(&args.kafka, args.node_id())? {
        Some(config) => {
            let bootstrap = config.bootstrap.clone();
            let log = KafkaLog::connect(config).await.with_context(|| format!("cannot use Kafka at {bootstrap}"))?;
            Ok(EventLog::kafka(log))
        }
        None if role != Role::All => anyhow::bail!(
            "`stockroom {}` runs one kind of node of a Kafka deployment and needs --kafka BOOTSTRAP; \
             on the embedded log, `stockroom serve` runs everything in one process",
            if role == Role::Command { "command" } else { "query" }
        ),
        None => {
            let log = EmbeddedLog::open(&data.join("log"), TopicNames::new(&args.kafka.topic_prefix), args.partitions)
                .with_context(|| format!("cannot open the event log in {}", data.join("log").display()))?;
            Ok(EventLog::embedded(log))
        }
    }
}

pub async fn serve(args: ServeArgs, role: Role) -> anyhow::Result<()> {
    let tokens = auth::Tokens::load(args.tokens_file.as_deref(), std::env::var("STOCKROOM_TOKENS").ok().as_deref())?;
    auth::check_exposure(&tokens, args.listen, args.insecure)?;
    let data = &args.data_dir;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let log = open_log(&args, role).await?;
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let mut checks: Vec<ops::Check> = Vec::new();
    let mut router = Router::new();
    let mut spec = utoipa::openapi::OpenApi::default();
    let mut state = None;
    let mut metrics = Metrics {
        log: log.clone(),
        http: Default::default(),
        processor: None,
        projector: None,
        rebuilds: None,
        scrapes: Default::default(),
    };

    if role.writes() {
        let store = StateStore::open(&data.join("state")).context("cannot open the state store")?;
        let processor = Processor::new(
            log.clone(),
            store.clone(),
            ProcessorConfig { node_id: args.node_id().to_owned(), ..ProcessorConfig::default() },
        );
        processor.follow(log.membership(&args.group_config())?, &tracker, cancel.clone());
        let client = CommandClient::start(log.clone(), args.node_id(), &tracker, cancel.clone()).await?;
        processor.answer_locally(client.clone());
        router = router.merge(stockroom_command::router(CommandApi { client, write_timeout: args.write_timeout }));
        spec.merge(stockroom_command::CommandApiDoc::openapi());
        let health = processor.health();
        metrics.processor = Some(health.clone());
        checks.push(("command-processor", Arc::new(move || health.ready())));
        state = Some(store);
    }
    if role.reads() {
        let catalog = Arc::new(CatalogSlot::open(data).context("cannot open the catalog index")?);
        let (orders, orders_fresh) = OrderBook::open(&data.join("orders")).context("cannot open the orders view")?;
        let orders = Arc::new(orders);
        let (projector, applied) = CatalogProjector::new(log.clone(), catalog.clone(), orders.clone(), orders_fresh)?;
        let projector_stats = projector.stats();
        // Rebuilds on request (the replay topic), swapped in by the projector.
        let rebuilder = Rebuilder::new(log.clone(), catalog.clone(), projector.swapper(), args.node_id());
        let rebuilds = rebuilder.status();
        metrics.projector = Some((projector_stats.clone(), applied.clone()));
        metrics.rebuilds = Some(rebuilds.clone());
        tracker.spawn(projector.run(cancel.clone()));
        tracker.spawn(rebuilder.run(cancel.clone()));
        router = router.merge(stockroom_query::router(QueryApi {
            catalog,
            orders,
            applied: applied.clone(),
            read_timeout: args.read_timeout,
        }));
        spec.merge(stockroom_query::QueryApiDoc::openapi());
        // The stock view: a projector of its own, with its own store and checkpoint.
        let book = Arc::new(StockBook::open(&data.join("stock")).context("cannot open the stock view")?);
        let (stock, stock_applied) = StockProjector::new(log.clone(), book.clone())?;
        let stock_stats = stock.stats();
        tracker.spawn(stock.run(cancel.clone()));
        let catalog_stats = projector_stats.clone();
        let views = admin::Views {
            log: log.clone(),
            views: vec![
                admin::View {
                    name: "catalog",
                    applied,
                    events_applied: Arc::new(move || catalog_stats.events_applied.load(Ordering::Relaxed)),
                    rebuilds: Some(rebuilds),
                },
                admin::View {
                    name: "stock",
                    applied: stock_applied.clone(),
                    events_applied: Arc::new(move || stock_stats.events_applied.load(Ordering::Relaxed)),
                    rebuilds: None,
                },
            ],
        };
        router = router.route("/admin/views", axum::routing::get(admin::views).with_state(Arc::new(views)));
        let replay = admin::Replay { log: log.clone(), node: args.node_id().to_owned() };
        router = router.route("/admin/replay", axum::routing::post(admin::replay).with_state(Arc::new(replay)));
        spec.merge(admin::AdminApiDoc::openapi());
        router = router.merge(stockroom_query::stock::router(StockApi {
            book,
            applied: stock_applied,
            read_timeout: args.read_timeout,
        }));
        spec.merge(stockroom_query::stock::StockApiDoc::openapi());
        checks.push(("catalog", Arc::new(move || projector_stats.caught_up.load(Ordering::Relaxed))));
    }
    let metrics = Arc::new(metrics);
    let router = router.route("/metrics", axum::routing::get(metrics::render).with_state(metrics.clone()));
    let limits = limits::Limits::new(args.max_concurrent_requests, args.request_timeout);
    let app = app(router, spec, checks)
        .layer(axum::middleware::from_fn_with_state(tokens.clone(), auth::authorize))
        .layer(axum::middleware::from_fn_with_state(limits, limits::enforce))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Where `stockroom replay --data-dir` finds this node.
    let addr_file = data.join(crate::replay::ADDR_FILE);
    if let Err(e) = std::fs::write(&addr_file, addr.to_string()) {
        tracing::warn!(file = %addr_file.display(), error = %e, "cannot record the listening address");
    }
    info!(%addr, role = ?role, access = if tokens.is_empty() { "open" } else { "tokens" }, log = log.backend(), data_dir = %data.display(), partitions = log.partitions(Topic::Events), "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;

    info!("shutting down");
    let _ = std::fs::remove_file(&addr_file);
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    log.close().await?;
    if let Some(state) = state {
        state.flush()?;
    }
    info!("stopped");
    Ok(())
}

/// `stockroom topics create`.
pub async fn create_topics(args: TopicsCreateArgs) -> anyhow::Result<()> {
    let Some(config) = kafka_config(&args.kafka, "stockroom-admin")? else {
        anyhow::bail!("`stockroom topics create` needs --kafka BOOTSTRAP (the embedded log creates its topics itself)");
    };
    let settings =
        TopicSettings { partitions: args.partitions, replication: args.replication, extra: args.topic_config };
    let (layout, created) = kafka::create_topics(&config, &settings).await?;
    for name in &created {
        println!("created {name}");
    }
    if created.is_empty() {
        println!("all topics exist");
    }
    println!("{} partitions (replay: 1); topics are co-partitioned", layout.partitions);
    Ok(())
}

/// The whole HTTP surface of a node: its APIs, health, OpenAPI and docs.
pub fn app(apis: Router, mut spec: utoipa::openapi::OpenApi, checks: Vec<ops::Check>) -> Router {
    spec.info.title = "Stockroom".into();
    spec.info.description = Some(
        "Event-sourced inventory and product catalog. Writes are commands; reads come from views built from the \
         event log. Errors are application/problem+json."
            .into(),
    );
    spec.info.version = env!("CARGO_PKG_VERSION").into();
    apis.merge(ops::router(spec, checks)).fallback(ops::not_found)
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
