//! `stockroom serve`: every part in one process, meeting only through the log.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use stockroom_command::outbox::{Connector, OutboxConfig, OutboxStats};
use stockroom_command::{CommandApi, CommandClient, Processor, ProcessorConfig, ProcessorHealth, StateStore};
use stockroom_query::sql::SqlProjector;
use stockroom_query::stock::{StockApi, StockBook, StockProjector};
use stockroom_query::{CatalogProjector, CatalogSlot, OrderBook, QueryApi, Rebuilder};
use stockroom_topics::kafka::{self, KafkaConfig, KafkaLog, TopicSettings};
use stockroom_topics::{EmbeddedLog, EventLog, Topic, TopicNames};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;
use utoipa::OpenApi;

use crate::cli::{KafkaArgs, OutboxArgs, ServeArgs, TopicsCreateArgs};
use crate::metrics::{self, Metrics};
use crate::views::{View, Views};
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

/// What the parts of a node hand the HTTP server: routes, their OpenAPI, readiness
/// checks, and the tasks to stop at shutdown.
struct Node {
    log: EventLog,
    tracker: TaskTracker,
    cancel: CancellationToken,
    router: Router,
    spec: utoipa::openapi::OpenApi,
    checks: Vec<ops::Check>,
}

impl Node {
    fn add_api(&mut self, router: Router, spec: utoipa::openapi::OpenApi) {
        self.router = std::mem::take(&mut self.router).merge(router);
        self.spec.merge(spec);
    }
}

pub async fn serve(args: ServeArgs, role: Role) -> anyhow::Result<()> {
    let tokens = auth::Tokens::load(args.tokens_file.as_deref(), std::env::var("STOCKROOM_TOKENS").ok().as_deref())?;
    auth::check_exposure(&tokens, args.listen, args.insecure)?;
    let data = &args.data_dir;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let log = open_log(&args, role).await?;
    let mut node = Node {
        log: log.clone(),
        tracker: TaskTracker::new(),
        cancel: CancellationToken::new(),
        router: Router::new(),
        spec: utoipa::openapi::OpenApi::default(),
        checks: Vec::new(),
    };
    let mut metrics = Metrics {
        log: log.clone(),
        http: Default::default(),
        processor: None,
        views: None,
        ingest: None,
        outbox: None,
    };
    let mut state = None;
    let mut api = None;
    if role.writes() {
        let WriteSide { store, health, ingest, api: command_api } = write_side(&args, &mut node).await?;
        metrics.processor = Some(health);
        metrics.ingest = Some(ingest);
        state = Some(store);
        api = Some(command_api);
    }
    if let (Some(dsn), Some(api)) = (&args.outbox, api) {
        let config = OutboxConfig::new(dsn.clone(), args.outbox_table.clone())?.with_mode(args.outbox_mode.into());
        let connector = Connector::new(config, api, log.clone());
        metrics.outbox = Some(connector.stats());
        node.tracker.spawn(connector.run(node.cancel.clone()));
    } else if args.outbox.is_some() {
        anyhow::bail!("--outbox needs a node that runs the write side (`serve` or `command`)");
    }
    if role.reads() {
        let outbox = metrics.outbox.clone().map(|stats| (args.outbox_table.clone(), stats));
        metrics.views = Some(read_side(&args, &mut node, outbox)?);
    }
    run_until_shutdown(&args, role, node, metrics, tokens).await?;
    if let Some(state) = state {
        state.flush()?;
    }
    info!("stopped");
    Ok(())
}

/// What the write side hands back to the node that runs it.
struct WriteSide {
    store: StateStore,
    health: Arc<ProcessorHealth>,
    ingest: crate::ingest::Ingest,
    api: CommandApi,
}

/// The write side: this node's command processors (on the partitions the group gives
/// it), the command API and catalog ingestion.
async fn write_side(args: &ServeArgs, node: &mut Node) -> anyhow::Result<WriteSide> {
    let log = &node.log;
    let store = StateStore::open(&args.data_dir.join("state")).context("cannot open the state store")?;
    let config = ProcessorConfig { node_id: args.node_id().to_owned(), ..ProcessorConfig::default() };
    let processor = Processor::new(log.clone(), store.clone(), config);
    processor.follow(log.membership(&args.group_config())?, &node.tracker, node.cancel.clone());
    let client = CommandClient::start(log.clone(), args.node_id(), &node.tracker, node.cancel.clone()).await?;
    processor.answer_locally(client.clone());
    let ingest = crate::ingest::Ingest::start(
        log.clone(),
        client.clone(),
        args.write_timeout,
        &node.tracker,
        node.cancel.clone(),
    )
    .await?;
    let ingest_api = crate::ingest::http::IngestApi {
        ingest: ingest.clone(),
        tracker: node.tracker.clone(),
        max_feed_bytes: args.max_feed_bytes,
    };
    node.add_api(crate::ingest::router(ingest_api), crate::ingest::IngestApiDoc::openapi());
    let api = CommandApi { client, write_timeout: args.write_timeout };
    node.add_api(stockroom_command::router(api.clone()), stockroom_command::CommandApiDoc::openapi());
    let health = processor.health();
    let ready = health.clone();
    node.checks.push(("command-processor", Arc::new(move || ready.ready())));
    Ok(WriteSide { store, health, ingest, api })
}

/// The read side: every view's projector, registered once (readiness, metrics and
/// `/admin/views` come from the registry), their read APIs, and rebuilds on request.
fn read_side(
    args: &ServeArgs,
    node: &mut Node,
    outbox: Option<(String, Arc<OutboxStats>)>,
) -> anyhow::Result<Arc<Views>> {
    let log = &node.log.clone();
    let data = &args.data_dir;
    let mut views = Views::new(log.clone());
    views.outbox = outbox;

    // The catalog (and the orders view, folded by the same projector), rebuilt on
    // request (the replay topic) and swapped in by the projector.
    let catalog = Arc::new(CatalogSlot::open(data).context("cannot open the catalog index")?);
    views.catalog = Some(catalog.clone());
    let (orders, orders_fresh) = OrderBook::open(&data.join("orders")).context("cannot open the orders view")?;
    let orders = Arc::new(orders);
    let (projector, applied) = CatalogProjector::new(log.clone(), catalog.clone(), orders.clone(), orders_fresh)?;
    let rebuilder = Rebuilder::new(log.clone(), catalog.clone(), projector.swapper(), args.node_id());
    views.register(View {
        name: "catalog",
        applied: applied.clone(),
        stats: projector.stats(),
        rebuilds: Some(rebuilder.status()),
    });
    node.tracker.spawn(projector.run(node.cancel.clone()));
    node.tracker.spawn(rebuilder.run(node.cancel.clone()));
    let api = QueryApi { catalog, orders, applied, read_timeout: args.read_timeout };
    node.add_api(stockroom_query::router(api), stockroom_query::QueryApiDoc::openapi());

    // The stock view: a projector of its own, with its own store and checkpoint.
    let book = Arc::new(StockBook::open(&data.join("stock")).context("cannot open the stock view")?);
    let (stock, applied) = StockProjector::new(log.clone(), book.clone())?;
    views.register(View { name: "stock", applied: applied.clone(), stats: stock.stats(), rebuilds: None });
    node.tracker.spawn(stock.run(node.cancel.clone()));
    let api = StockApi { book, applied, read_timeout: args.read_timeout };
    node.add_api(stockroom_query::stock::router(api), stockroom_query::stock::StockApiDoc::openapi());

    // The SQL read model, when asked for: a projector into PostgreSQL tables.
    if let Some(dsn) = &args.sql_model {
        let (sql, applied) = SqlProjector::new(log.clone(), dsn);
        views.register(View { name: "sql", applied, stats: sql.stats(), rebuilds: Some(sql.rebuilds()) });
        node.tracker.spawn(sql.run(node.cancel.clone()));
    }

    node.checks.extend(views.checks());
    let views = Arc::new(views);
    let replay = Arc::new(admin::Replay { log: log.clone(), node: args.node_id().to_owned() });
    let admin = Router::new()
        .route("/admin/views", axum::routing::get(admin::views).with_state(views.clone()))
        .route("/admin/replay", axum::routing::post(admin::replay).with_state(replay));
    node.add_api(admin, admin::AdminApiDoc::openapi());
    // The web console at `/`: static pages over the routes above, not in the OpenAPI.
    node.router = std::mem::take(&mut node.router).merge(stockroom_query::console::router());
    Ok(views)
}

/// Serves HTTP until SIGINT or SIGTERM, then stops every task and closes the log.
async fn run_until_shutdown(
    args: &ServeArgs,
    role: Role,
    node: Node,
    metrics: Metrics,
    tokens: auth::Tokens,
) -> anyhow::Result<()> {
    let Node { log, tracker, cancel, router, spec, checks } = node;
    let metrics = Arc::new(metrics);
    let router = router.route("/metrics", axum::routing::get(metrics::render).with_state(metrics.clone()));
    let limits = limits::Limits::new(args.max_concurrent_requests, args.request_timeout);
    let open = tokens.is_empty();
    let app = app(router, spec, checks)
        .layer(axum::middleware::from_fn_with_state(tokens, auth::authorize))
        .layer(axum::middleware::from_fn_with_state(limits, limits::enforce))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Where `stockroom replay --data-dir` finds this node.
    let addr_file = args.data_dir.join(crate::replay::ADDR_FILE);
    if let Err(e) = std::fs::write(&addr_file, addr.to_string()) {
        tracing::warn!(file = %addr_file.display(), error = %e, "cannot record the listening address");
    }
    info!(%addr, role = ?role, access = if open { "open" } else { "tokens" }, log = log.backend(), data_dir = %args.data_dir.display(), partitions = log.partitions(Topic::Events), "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;

    info!("shutting down");
    let _ = std::fs::remove_file(&addr_file);
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    log.close().await?;
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

/// `stockroom connect postgres-outbox`: the outbox connector as a node of its own on
/// Kafka. It sends commands through `commands` and waits for their outcomes on
/// `results`, as a command API node does; it runs no processor.
pub async fn connect_outbox(args: OutboxArgs) -> anyhow::Result<()> {
    let Some(config) = kafka_config(&args.kafka, &args.node_id)? else {
        anyhow::bail!(
            "`stockroom connect postgres-outbox` runs as a node of a Kafka deployment and needs --kafka BOOTSTRAP; \
             on the embedded log, use `stockroom serve --outbox DSN`"
        );
    };
    let bootstrap = config.bootstrap.clone();
    let log =
        EventLog::kafka(KafkaLog::connect(config).await.with_context(|| format!("cannot use Kafka at {bootstrap}"))?);
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let client = CommandClient::start(log.clone(), &args.node_id, &tracker, cancel.clone()).await?;
    // The connector waits for each outcome itself (a 202 is sent again), so the bound
    // only sets how often it asks.
    let api = CommandApi { client, write_timeout: std::time::Duration::from_secs(5) };
    let config = OutboxConfig::new(args.dsn.clone(), args.table.clone())?.with_mode(args.mode.into());
    let connector = Connector::new(config, api, log.clone());
    let stats = connector.stats();
    tracker.spawn(connector.run(cancel.clone()));
    let metrics = Arc::new(Metrics {
        log: log.clone(),
        http: Default::default(),
        processor: None,
        views: None,
        ingest: None,
        outbox: Some(stats.clone()),
    });
    if let Some(listen) = args.listen {
        let ready = stats.clone();
        let checks: Vec<ops::Check> =
            vec![("outbox", Arc::new(move || ready.connected.load(std::sync::atomic::Ordering::Relaxed)))];
        let router = Router::new().route("/metrics", axum::routing::get(metrics::render).with_state(metrics));
        let app = app(router, utoipa::openapi::OpenApi::default(), checks);
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        info!(addr = %listener.local_addr()?, table = %args.table, "outbox connector listening");
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    } else {
        info!(table = %args.table, "outbox connector running");
        shutdown_signal().await;
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    log.close().await?;
    Ok(())
}
