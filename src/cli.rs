//! The command line (API.md, "Command line"). Every flag has an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "stockroom",
    version,
    about = "Event-sourced inventory and product catalog",
    long_about = "Event-sourced inventory and product catalog.\n\n\
        Writes arrive over HTTP as commands, are validated by a command processor partitioned by SKU \
        and appended to an event log, the source of truth. Projectors build a searchable catalog from \
        the log. `stockroom serve` runs everything in one process on an embedded, durable log."
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
pub struct LogArgs {
    /// Log output format.
    #[arg(long, global = true, env = "STOCKROOM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter, in tracing's EnvFilter syntax (e.g. `info,stockroom_command=debug`).
    #[arg(long, global = true, env = "STOCKROOM_LOG", default_value = "info")]
    pub log: String,
}

/// `--outbox-mode` (`--mode` of `connect postgres-outbox`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxModeArg {
    /// A logical replication slot and `pgoutput` (`wal_level=logical`, REPLICATION).
    Replication,
    /// Queries of the outbox table by transaction id (any server, no REPLICATION).
    Poll,
}

impl From<OutboxModeArg> for stockroom_command::outbox::OutboxMode {
    fn from(mode: OutboxModeArg) -> Self {
        match mode {
            OutboxModeArg::Replication => stockroom_command::outbox::OutboxMode::Replication,
            OutboxModeArg::Poll => stockroom_command::outbox::OutboxMode::Poll,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run everything in one process: command API, command processor, projector and
    /// read API, on the embedded log (the default) or on Kafka with --kafka.
    Serve(ServeArgs),
    /// Run a command node on Kafka: the write API, and the processors of the
    /// partitions this node owns among the live command nodes. Start as many as you like.
    #[command(name = "command")]
    Writer(ServeArgs),
    /// Run a query node on Kafka: the catalog projector over every partition and the
    /// read API, from this node's own index. Start as many as you like.
    #[command(name = "query")]
    Reader(ServeArgs),
    /// Manage the Kafka topics.
    Topics {
        #[command(subcommand)]
        action: TopicsCommand,
    },
    /// Ask every query node to rebuild a view from the start of the log, in the
    /// background (the old view serves until the new one has caught up and is swapped
    /// in), and show their progress until each is done.
    Replay(ReplayArgs),
    /// Send a catalog feed to a node (POST /ingest/{source}) — or, with `--rerun`, run
    /// the pipeline again over the source's kept rows —, show the run's progress, and print the finished run as JSON on the last line. Exits 0 when the run is
    /// done (rejected rows do not fail it), non-zero when it failed.
    Ingest(IngestArgs),
    /// Run a connector as its own node on Kafka: `connect postgres-outbox` reads a
    /// PostgreSQL transactional outbox and sends every committed row as a command.
    Connect {
        #[command(subcommand)]
        action: ConnectCommand,
    },
    /// Work with the event log itself.
    Log {
        #[command(subcommand)]
        action: LogCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Copy an embedded log (`events` and `dlq`) into Kafka topics, partition by
    /// partition with order and offsets kept. Resumable: run it again after an
    /// interruption. Refuses topics that hold anything else, unless --force.
    Export(LogExportArgs),
    /// Print a topic of an embedded log as JSON lines (partition, offset, key,
    /// timestamp, headers, payload), partition by partition in order. For reading a
    /// log with ordinary tools; the node must not be running (the log is locked).
    Dump(LogDumpArgs),
}

#[derive(Args, Debug, Clone)]
pub struct LogDumpArgs {
    /// The data directory whose embedded log (`DIR/log`) is read.
    #[arg(long, env = "STOCKROOM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Which durable topic: events, dlq, or sources (catalog feeds' raw rows and source definitions).
    #[arg(long, default_value = "events", value_parser = ["events", "dlq", "sources"])]
    pub topic: String,
    /// Prefix of the topic names.
    #[arg(long, env = "STOCKROOM_TOPIC_PREFIX", default_value = "stockroom")]
    pub topic_prefix: String,
}

#[derive(Args, Debug, Clone)]
pub struct LogExportArgs {
    /// The data directory whose embedded log (`DIR/log`) is copied.
    #[arg(long, env = "STOCKROOM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Replication factor of topics this creates (default: the broker's
    /// `default.replication.factor`).
    #[arg(long)]
    pub replication: Option<i32>,
    /// Append even into topics that hold records that are not a copy of this log.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct IngestArgs {
    /// The source the feed comes from (defined with PUT /ingest/sources/{source}).
    #[arg(long)]
    pub source: String,
    /// The feed: a JSON array, JSON lines or CSV with a header row.
    #[arg(required_unless_present = "rerun")]
    pub file: Option<PathBuf>,
    /// Instead of a feed: run the pipeline again over the raw rows the log keeps for the
    /// source, by its current definition (POST /ingest/{source}/rerun).
    #[arg(long, conflicts_with_all = ["file", "mode", "format"])]
    pub rerun: bool,
    /// `delta`, or `snapshot` (what this source alone listed and no longer lists is discontinued).
    #[arg(long, default_value = "delta", value_parser = ["delta", "snapshot"])]
    pub mode: String,
    /// The node to send it to.
    #[arg(long, env = "STOCKROOM_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The feed's format; by default from the file's extension (.json, .ndjson or .jsonl, .csv).
    #[arg(long, value_parser = ["json", "ndjson", "csv"])]
    pub format: Option<String>,
    /// Bearer token (writer role) when the node has tokens.
    #[arg(long, env = "STOCKROOM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ReplayArgs {
    /// The view to rebuild.
    #[arg(long, default_value = "catalog")]
    pub view: String,
    /// Embedded log: the node's data directory (its address is read from
    /// `DIR/serve.addr`; with no node running, the request is written into the log).
    #[arg(long, env = "STOCKROOM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Ask this node over HTTP instead (`http://host:port`).
    #[arg(long, env = "STOCKROOM_URL")]
    pub url: Option<String>,
    /// Bearer token (admin role) for --url or the embedded node.
    #[arg(long, env = "STOCKROOM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Publish the request and return without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for every node to finish.
    #[arg(long, default_value = "60m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Kafka: how long no new node must have reported before the wait ends.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub settle: Duration,
}

#[derive(Subcommand, Debug)]
pub enum ConnectCommand {
    /// Read a PostgreSQL outbox table — by logical replication (a slot and `pgoutput`),
    /// or by polling with `--mode poll` — and send each committed row as a command
    /// through `commands`.
    PostgresOutbox(OutboxArgs),
}

#[derive(Args, Debug, Clone)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The PostgreSQL connection (libpq string or URL); for `--mode replication` the
    /// role needs REPLICATION and the server `wal_level=logical`.
    #[arg(long, env = "STOCKROOM_OUTBOX")]
    pub dsn: String,
    /// The outbox table.
    #[arg(long, env = "STOCKROOM_OUTBOX_TABLE", default_value = "outbox")]
    pub table: String,
    /// How committed rows are found: `replication` (a logical slot: low latency, no
    /// queries on the table) or `poll` (queries of the table by transaction id, every
    /// 50 ms: any server, no REPLICATION needed; rows wait for the server's oldest open transaction).
    #[arg(long, env = "STOCKROOM_OUTBOX_MODE", value_enum, default_value = "replication")]
    pub mode: OutboxModeArg,
    /// This node's name in logs and CloudEvents `source`.
    #[arg(long, env = "STOCKROOM_NODE_ID", default_value = "outbox")]
    pub node_id: String,
    /// Where to serve `/metrics` and `/health/*` (optional).
    #[arg(long, env = "STOCKROOM_LISTEN")]
    pub listen: Option<SocketAddr>,
}

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Create the topics (commands, events, results, replay, dlq, sources) with their settings.
    /// Existing topics are kept; they must be co-partitioned, or this refuses.
    Create(TopicsCreateArgs),
}

#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port,...`). Without it, the embedded log is used.
    #[arg(long, env = "STOCKROOM_KAFKA")]
    pub kafka: Option<String>,
    /// Extra librdkafka settings for every client (SASL, TLS, ...): `key=value`, or the
    /// path of a properties file of `key=value` lines. Repeatable; later ones win.
    /// In the environment, separate several with commas.
    #[arg(long, env = "STOCKROOM_KAFKA_CONFIG", value_delimiter = ',')]
    pub kafka_config: Vec<String>,
    /// Prefix of the topic names (`<prefix>.events`, ...).
    #[arg(long, env = "STOCKROOM_TOPIC_PREFIX", default_value = "stockroom")]
    pub topic_prefix: String,
}

#[derive(Args, Debug, Clone)]
pub struct TopicsCreateArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Partitions of commands, events, results and dlq (replay has one). Fixed for
    /// good: the SKU → partition mapping depends on it.
    #[arg(long, env = "STOCKROOM_PARTITIONS", default_value_t = 8)]
    pub partitions: u32,
    /// Replication factor: 3 in production (default: the broker's
    /// `default.replication.factor`; 1 on scripts/kafka.sh's single broker, 3 on its
    /// three-node cluster, whose `min.insync.replicas` is 2).
    #[arg(long)]
    pub replication: Option<i32>,
    /// Extra topic config for every topic, `key=value` (repeatable), e.g. `min.insync.replicas=2`.
    #[arg(long = "topic-config", value_parser = parse_key_value)]
    pub topic_config: Vec<(String, String)>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The Kafka consumer group through which command nodes share the partitions
    /// (default `<topic prefix>.processors`). With `--node-id`, a node is a static
    /// member: restarted within the session timeout, it gets its partitions back at once.
    #[arg(long, env = "STOCKROOM_GROUP")]
    pub group: Option<String>,
    /// How long a command node may go unheard before the group moves its partitions
    /// (Kafka's `session.timeout.ms`).
    #[arg(long, env = "STOCKROOM_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub session_timeout: Duration,
    /// Where the embedded log, the state stores and the views live.
    #[arg(long, env = "STOCKROOM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The HTTP address to listen on (port 0 picks a free port; the log line says which).
    #[arg(long, env = "STOCKROOM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Partitions of a new embedded log (default 8). An existing log keeps its count;
    /// asking for another count is refused.
    #[arg(long, env = "STOCKROOM_PARTITIONS")]
    pub partitions: Option<u32>,
    /// This node's name in logs, writer fences and CloudEvents `source` (default
    /// `stockroom`). On Kafka, give every command node its own: it is also the node's
    /// static member id in the command group (`group.instance.id`).
    #[arg(long, env = "STOCKROOM_NODE_ID")]
    pub node_id: Option<String>,
    /// The largest catalog feed one `POST /ingest/{source}` may carry, in bytes (413 above).
    #[arg(long, env = "STOCKROOM_MAX_FEED_BYTES", default_value_t = crate::ingest::http::MAX_FEED_BYTES)]
    pub max_feed_bytes: usize,
    /// How long a write waits for its outcome before answering 202 with a Location to poll.
    #[arg(long, env = "STOCKROOM_WRITE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// How long a read with Stockroom-Min-Position waits for the view before answering 503.
    #[arg(long, env = "STOCKROOM_READ_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub read_timeout: Duration,
    /// Bearer tokens, one `role token` per line (roles: reader, writer, admin). More
    /// can come from the environment as STOCKROOM_TOKENS=role:token,role:token. With
    /// tokens, reads need reader, writes writer and /admin/* admin.
    #[arg(long, env = "STOCKROOM_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Listen on a non-loopback address without any tokens (only on a trusted network).
    #[arg(long, env = "STOCKROOM_INSECURE")]
    pub insecure: bool,
    /// The most requests served at once; more are answered 503 with Retry-After.
    #[arg(long, env = "STOCKROOM_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
    /// The longest a request may take before it is answered 503.
    #[arg(long, env = "STOCKROOM_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Also read a PostgreSQL transactional outbox (a libpq connection string or URL):
    /// every committed row of the outbox table becomes a command (API.md, "Databases").
    /// With `--outbox-mode replication` the role needs REPLICATION (or superuser) and
    /// the server `wal_level=logical`.
    #[arg(long, env = "STOCKROOM_OUTBOX")]
    pub outbox: Option<String>,
    /// The outbox table.
    #[arg(long, env = "STOCKROOM_OUTBOX_TABLE", default_value = "outbox")]
    pub outbox_table: String,
    /// How committed outbox rows are found: `replication` (a logical slot: low latency,
    /// no queries on the table) or `poll` (queries of the table by transaction id,
    /// every 50 ms: any server, no REPLICATION needed; rows wait for the server's oldest open
    /// transaction).
    #[arg(long, env = "STOCKROOM_OUTBOX_MODE", value_enum, default_value = "replication")]
    pub outbox_mode: OutboxModeArg,
    /// Keep the SQL read model (schema `stockroom`: products, stock, stock_movements)
    /// in this PostgreSQL database (a libpq connection string or URL).
    #[arg(long, env = "STOCKROOM_SQL_MODEL")]
    pub sql_model: Option<String>,
}

/// Parses `250ms`, `5s`, `2m` or a bare number of seconds.
impl ServeArgs {
    /// This node's name (`--node-id`, default `stockroom`).
    pub fn node_id(&self) -> &str {
        self.node_id.as_deref().unwrap_or("stockroom")
    }

    /// How this node takes part in the command group on Kafka: static when it has
    /// a name of its own.
    pub fn group_config(&self) -> stockroom_topics::GroupConfig {
        stockroom_topics::GroupConfig {
            group: self.group.clone().unwrap_or_else(|| format!("{}.processors", self.kafka.topic_prefix)),
            instance: self.node_id.clone(),
            session: self.session_timeout,
        }
    }
}

/// A duration as people write it (`250ms`, `5s`, `2m`, `1h 30m`: `humantime`'s
/// syntax); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 250ms, 5s or 2m ({e})"))
}

pub fn init_tracing(args: &LogArgs) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|e| {
        eprintln!("warning: bad log filter {:?} ({e}); using info", args.log);
        EnvFilter::new("info")
    });
    // Colours only for a person at a terminal, not in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::serve::serve(args, crate::serve::Role::All).await,
        Command::Writer(args) => crate::serve::serve(args, crate::serve::Role::Command).await,
        Command::Reader(args) => crate::serve::serve(args, crate::serve::Role::Query).await,
        Command::Topics { action: TopicsCommand::Create(args) } => crate::serve::create_topics(args).await,
        Command::Log { action: LogCommand::Export(args) } => crate::export::export(args).await,
        Command::Log { action: LogCommand::Dump(args) } => crate::export::dump(args).await,
        Command::Replay(args) => crate::replay::replay(args).await,
        Command::Ingest(args) => crate::ingest_cli::ingest(args).await,
        Command::Connect { action: ConnectCommand::PostgresOutbox(args) } => crate::serve::connect_outbox(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_settings_are_repeatable_key_values_or_files() {
        let cli = Cli::try_parse_from([
            "stockroom",
            "command",
            "--kafka",
            "b:9092",
            "--kafka-config",
            "security.protocol=SASL_SSL",
            "--kafka-config",
            "client.properties",
        ])
        .unwrap();
        let Command::Writer(args) = cli.command else { panic!("command node") };
        assert_eq!(args.kafka.kafka_config, ["security.protocol=SASL_SSL", "client.properties"]);
        assert_eq!(args.kafka.kafka.as_deref(), Some("b:9092"));
        assert_eq!(args.node_id(), "stockroom");
        assert_eq!(args.group_config().instance, None, "no node id, no static membership");
        let cli = Cli::try_parse_from(["stockroom", "command", "--node-id", "c1", "--session-timeout", "3s"]).unwrap();
        let Command::Writer(args) = cli.command else { panic!("command node") };
        let group = args.group_config();
        assert_eq!(group.group, "stockroom.processors");
        assert_eq!(group.instance.as_deref(), Some("c1"));
        assert_eq!(group.session, Duration::from_secs(3));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("abc").is_err());
    }

    /// The help of `topics create` names every topic it creates: a new topic cannot
    /// be added without its help saying so.
    #[test]
    fn topics_create_help_lists_every_topic() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let topics = cli.find_subcommand_mut("topics").expect("a topics command");
        let create = topics.find_subcommand_mut("create").expect("topics create");
        let help = create.get_about().map(|a| a.to_string()).unwrap_or_default();
        for topic in stockroom_topics::Topic::ALL {
            assert!(help.contains(topic.suffix()), "`topics create --help` does not name {:?}: {help}", topic.suffix());
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
