//! One run of a feed: rows kept, cleaned, matched, merged and written (see the
//! module doc of `ingest`), with counts that add up: `read = created + updated +
//! unchanged + rejected`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use stockroom_command::CommandClient;
use stockroom_command::client::Submitted;
use stockroom_command::protocol::{CommandRecord, Outcome, Target, digest};
use stockroom_domain::ingest::clean::CleanRules;
use stockroom_domain::ingest::merge::is_empty;
use stockroom_domain::ingest::{CleanRow, FeedOrigin, FeedRow, clean_row, match_key, merge_patch};
use stockroom_domain::product::{NewProduct, Product, ProductCommand};
use stockroom_domain::{CommandId, Rejection, Sku, Timestamp};
use stockroom_topics::envelope::{self, Envelope};
use stockroom_topics::{EventLog, LogResult, Offset, Partition, Topic, time};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::feed::Mapped;
use super::sources::SourceDef;
use super::view::{self, MatchView};

const DEFINITION_TYPE: &str = "stockroom.ingest.source-defined";
const ROW_TYPE: &str = "stockroom.ingest.row-received";
const RUN_TYPE: &str = "stockroom.ingest.run-reported";
/// A run's report is kept in the log with at most this many of its rejections (the
/// counts are whole): a report is one record.
const KEPT_REJECTIONS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Delta,
    Snapshot,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RowRejection {
    /// 1-based position of the row in the feed.
    pub row: usize,
    pub source_id: Option<String>,
    pub reason: String,
}

/// `GET /ingest/runs/{run_id}`. Kept in the log (the `sources` topic, `run/{run_id}`)
/// when the run starts and when it ends, so a node still answers for it after a
/// restart.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RunReport {
    pub run_id: String,
    pub source: String,
    pub mode: Mode,
    /// `running`, `done` or `failed`
    pub state: String,
    /// Rows in the feed.
    pub total: usize,
    pub read: usize,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: usize,
    pub warnings: usize,
    /// Products discontinued by a snapshot (not rows; not part of `read`).
    pub discontinued: usize,
    /// The rejected rows, by row; a report read back after a restart has at most the
    /// first 1,000 (`rejected` still counts them all).
    pub rejections: Vec<RowRejection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Read back from the log at start, not run by this node since: not in `/metrics`.
    #[serde(skip)]
    restored: bool,
}

#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    log: EventLog,
    client: CommandClient,
    write_timeout: Duration,
    sources: Mutex<BTreeMap<String, SourceDef>>,
    view: Arc<Mutex<MatchView>>,
    folded: watch::Receiver<u64>,
    runs: Mutex<HashMap<String, RunReport>>,
    /// Digest of the last raw row kept for each `{source}/{source_id}`: a row equal
    /// to it is in the log already and is not appended again.
    kept: Mutex<HashMap<String, String>>,
    /// One run at a time: rows of two runs never race for one product.
    running: tokio::sync::Mutex<()>,
}

enum RowResult {
    Created,
    Updated,
    Unchanged,
}

/// Rows matched, merged and written concurrently, at most this many at a time.
/// Measured with 100,000 new rows (release, embedded): 256 gave 1,839 rows/s, 2,048
/// gave 4,514, 8,192 gave 4,029 (the write path is the limit then).
const WINDOW: usize = 2048;

/// What one row will do, decided against the match tables.
enum Plan {
    Unchanged(Sku),
    Write { sku: Sku, command: Box<ProductCommand>, expected: u64 },
}

impl Plan {
    /// What the row touches: no two rows of a round may share any of these.
    fn claims(&self, row: &CleanRow) -> Vec<String> {
        let sku = match self {
            Plan::Unchanged(sku) | Plan::Write { sku, .. } => sku,
        };
        let mut claims = vec![format!("s:{sku}")];
        if let Some(g) = &row.details.gtin {
            claims.push(format!("g:{}", g.canonical()));
        }
        if let Some(k) = match_key(row.details.brand.as_deref(), &row.details.name) {
            claims.push(format!("k:{k}"));
        }
        claims
    }
}

enum Written {
    Done(RowResult, Sku),
    Retry,
    Rejected(String),
    Failed(String),
}

/// Matches `row` (this source's id, then GTIN, then brand and name, then its own SKU)
/// and merges it into what it matched, or plans a registration.
fn plan_row(v: &MatchView, sources: &BTreeMap<String, SourceDef>, source: &str, priority: i64, row: &CleanRow) -> Plan {
    let origin = FeedOrigin { source: source.to_owned(), source_id: row.source_id.clone() };
    let found = v
        .by_source(source, &row.source_id)
        .or_else(|| row.details.gtin.as_ref().and_then(|g| v.by_gtin(&g.canonical())))
        .or_else(|| match_key(row.details.brand.as_deref(), &row.details.name).and_then(|k| v.by_key(&k)));
    let new_sku = row.sku.clone().unwrap_or_else(|| derived_sku(source, &row.source_id));
    match found.or_else(|| v.products.get(&new_sku)) {
        Some(p) => {
            let priority_of = |s: &str| sources.get(s).map_or(i64::MIN, |d| d.priority);
            let mut patch = merge_patch(p, &row.details, &origin, priority, priority_of);
            if is_empty(&patch) && p.sources.contains(&origin) {
                return Plan::Unchanged(p.sku.clone());
            }
            patch.origin = Some(Box::new(origin));
            Plan::Write {
                sku: p.sku.clone(),
                command: Box::new(ProductCommand::UpdateDetails(patch)),
                expected: p.version,
            }
        }
        None => {
            let new =
                NewProduct { details: row.details.clone(), initial_stock: row.stock, origin: Some(Box::new(origin)) };
            Plan::Write { sku: new_sku, command: Box::new(ProductCommand::Register(new)), expected: 0 }
        }
    }
}

impl Ingest {
    /// Reads the source definitions from the log and starts following `events`.
    pub async fn start(
        log: EventLog,
        client: CommandClient,
        write_timeout: Duration,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> LogResult<Ingest> {
        let (sources, kept, runs) = read_sources_topic(&log).await?;
        let view = Arc::new(Mutex::new(MatchView::default()));
        let (tx, folded) = watch::channel(0);
        let following = (log.clone(), view.clone());
        tracker.spawn(async move {
            if let Err(e) = view::follow(following.0, following.1, tx, cancel).await {
                warn!(error = %e, "ingestion match tables stopped");
            }
        });
        Ok(Ingest {
            inner: Arc::new(Inner {
                log,
                client,
                write_timeout,
                sources: Mutex::new(sources),
                view,
                folded,
                runs: Mutex::new(runs),
                kept: Mutex::new(kept),
                running: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn source(&self, name: &str) -> Option<SourceDef> {
        lock(&self.inner.sources).get(name).cloned()
    }

    pub fn sources(&self) -> BTreeMap<String, SourceDef> {
        lock(&self.inner.sources).clone()
    }

    /// Keeps a definition in the log; returns whether it is new.
    pub async fn define(&self, name: &str, def: SourceDef) -> LogResult<bool> {
        let payload = serde_json::json!({"name": name, "definition": def});
        let key = format!("definition/{name}");
        self.append(DEFINITION_TYPE, &key, payload.to_string().into_bytes()).await?;
        Ok(lock(&self.inner.sources).insert(name.to_owned(), def).is_none())
    }

    /// Rows by outcome over every run this node has done since start, and how many
    /// runs are in progress (for `/metrics`).
    pub fn totals(&self) -> ([(&'static str, u64); 6], u64) {
        let runs = lock(&self.inner.runs);
        let mut t = [("read", 0), ("created", 0), ("updated", 0), ("unchanged", 0), ("rejected", 0), ("warnings", 0)];
        for r in runs.values().filter(|r| !r.restored) {
            for (i, n) in [r.read, r.created, r.updated, r.unchanged, r.rejected, r.warnings].into_iter().enumerate() {
                t[i].1 += n as u64;
            }
        }
        (t, runs.values().filter(|r| r.state == "running").count() as u64)
    }

    pub fn run(&self, id: &str) -> Option<RunReport> {
        lock(&self.inner.runs).get(id).cloned()
    }

    /// The last raw row the log keeps for each source id of `source`, in source-id
    /// order: the feed of a re-run (`POST /ingest/{source}/rerun`), which cleans,
    /// matches and merges them again by today's definition and rules.
    pub async fn kept_rows(&self, source: &str) -> LogResult<Vec<Mapped>> {
        #[derive(serde::Deserialize)]
        struct Kept {
            source: String,
            row: FeedRow,
        }
        let mut latest: BTreeMap<String, FeedRow> = BTreeMap::new();
        scan_sources(&self.inner.log, |env, payload| {
            if env.event_type != ROW_TYPE {
                return;
            }
            if let Ok(kept) = serde_json::from_slice::<Kept>(payload)
                && kept.source == source
            {
                latest.insert(kept.row.source_id.clone(), kept.row);
            }
        })
        .await?;
        Ok(latest.into_values().map(Ok).collect())
    }

    /// Starts a run over `rows`; returns its id at once.
    pub fn submit(
        &self,
        source: String,
        def: SourceDef,
        mode: Mode,
        rows: Vec<Mapped>,
        tracker: &TaskTracker,
    ) -> String {
        let run_id = format!("run-{}", uuid::Uuid::new_v4().simple());
        let report = RunReport {
            run_id: run_id.clone(),
            source: source.clone(),
            mode,
            state: "running".into(),
            total: rows.len(),
            read: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            rejected: 0,
            warnings: 0,
            discontinued: 0,
            rejections: Vec::new(),
            error: None,
            restored: false,
        };
        lock(&self.inner.runs).insert(run_id.clone(), report);
        let this = self.clone();
        let id = run_id.clone();
        tracker.spawn(async move {
            // Kept before waiting for a run ahead of it, so a run still queued when its
            // node stops is not forgotten either.
            this.keep_report(&id).await;
            let _one = this.inner.running.lock().await;
            let result = this.execute(&id, &source, &def, mode, rows).await;
            this.update(&id, |r| match result {
                Ok(()) => r.state = "done".into(),
                Err(e) => {
                    r.state = "failed".into();
                    r.error = Some(e);
                }
            });
            this.keep_report(&id).await;
        });
        run_id
    }

    /// Appends the run's report as it stands to the log. A report that cannot be kept
    /// costs only its survival across a restart: logged, not fatal to the run.
    async fn keep_report(&self, id: &str) {
        let Some(mut report) = self.run(id) else { return };
        report.rejections.truncate(KEPT_REJECTIONS);
        let kept = match serde_json::to_vec(&report) {
            Ok(payload) => self.append(RUN_TYPE, &format!("run/{id}"), payload).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = kept {
            warn!(run = id, error = %e, "the run's report was not kept in the log; a restart forgets it");
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut RunReport)) {
        if let Some(r) = lock(&self.inner.runs).get_mut(id) {
            f(r);
        }
    }

    async fn execute(
        &self,
        id: &str,
        source: &str,
        def: &SourceDef,
        mode: Mode,
        rows: Vec<Mapped>,
    ) -> Result<(), String> {
        // 1. Keep the raw rows, in batches, before deciding anything about them.
        for chunk in rows.chunks(512) {
            let mut by_partition: BTreeMap<Partition, (Vec<_>, Vec<_>)> = BTreeMap::new();
            for row in chunk.iter().flatten() {
                let key = format!("{source}/{}", row.source_id);
                let content = serde_json::to_vec(row).map_err(|e| e.to_string())?;
                let row_digest = digest(&[&content]);
                if lock(&self.inner.kept).get(&key) == Some(&row_digest) {
                    continue;
                }
                let payload = serde_json::json!({"source": source, "run_id": id, "row": row, "digest": row_digest});
                let record = self.record(ROW_TYPE, &key, payload.to_string().into_bytes());
                let (records, digests) =
                    by_partition.entry(self.inner.log.partition_for_key(Topic::Sources, key.as_bytes())).or_default();
                records.push(record);
                digests.push((key, row_digest));
            }
            for (p, (records, digests)) in by_partition {
                self.inner.log.append(Topic::Sources, p, records).await.map_err(|e| e.to_string())?;
                // Only once the rows are durable: a failed append is tried again next time.
                lock(&self.inner.kept).extend(digests);
            }
        }
        let rules = CleanRules { price_unit: def.price_unit, currency: &def.currency, category_map: &def.category_map };
        let mut listed = std::collections::HashSet::new();
        // 2. Clean every row; rejected ones are counted at once.
        let mut clean = Vec::new();
        for (i, mapped) in rows.iter().enumerate() {
            let rejected = match mapped {
                Err(reason) => Some((None, reason.clone())),
                Ok(row) => match clean_row(row, &rules) {
                    Err(r) => Some((Some(row.source_id.clone()), r.to_string())),
                    Ok(cleaned) => {
                        self.update(id, |r| r.warnings += cleaned.warnings as usize);
                        clean.push((i + 1, cleaned.row));
                        None
                    }
                },
            };
            if let Some((source_id, reason)) = rejected {
                self.count(id, i + 1, Err((source_id, reason)));
            }
        }
        // 3–5. Match, merge and write, a window of rows at a time: the rows of a window
        // that touch distinct products are written concurrently; a row that touches
        // a product (SKU, GTIN or brand-and-name key) another row of the window has
        // claimed waits for the next round, so it sees that row's write.
        for window in clean.chunks(WINDOW) {
            let mut pending: Vec<(usize, &CleanRow, u32)> = window.iter().map(|(n, r)| (*n, r, 0)).collect();
            while !pending.is_empty() {
                let mut claimed = std::collections::HashSet::new();
                let mut round = Vec::new();
                let mut later = Vec::new();
                {
                    let v = lock(&self.inner.view);
                    let sources = lock(&self.inner.sources);
                    for (n, row, attempts) in pending {
                        let plan = plan_row(&v, &sources, source, def.priority, row);
                        let claims = plan.claims(row);
                        if claims.iter().any(|c| claimed.contains(c)) {
                            later.push((n, row, attempts));
                            continue;
                        }
                        claimed.extend(claims);
                        round.push((n, row, attempts, plan));
                    }
                }
                let writes = round.into_iter().map(|(n, row, attempts, plan)| async move {
                    let result = self.carry_out(source, plan).await;
                    (n, row, attempts, result)
                });
                for (n, row, attempts, result) in futures::future::join_all(writes).await {
                    match result {
                        Written::Done(r, sku) => {
                            listed.insert(sku);
                            self.count(id, n, Ok(r));
                        }
                        Written::Retry if attempts < 5 => later.push((n, row, attempts + 1)),
                        Written::Retry => self.count(
                            id,
                            n,
                            Err((
                                Some(row.source_id.clone()),
                                "the product kept changing while the row was merged; send the feed again".into(),
                            )),
                        ),
                        Written::Rejected(reason) => self.count(id, n, Err((Some(row.source_id.clone()), reason))),
                        Written::Failed(e) => return Err(e),
                    }
                }
                later.sort_by_key(|(n, _, _)| *n);
                pending = later;
            }
        }
        self.update(id, |r| r.rejections.sort_by_key(|x| x.row));
        if mode == Mode::Snapshot {
            let gone: Vec<Product> = {
                let v = lock(&self.inner.view);
                v.listed_only_by(source).into_iter().filter(|p| !listed.contains(&p.sku)).cloned().collect()
            };
            for p in gone {
                let cmd = ProductCommand::Discontinue;
                match self.send(&p.sku, cmd, Some(p.version), source).await {
                    Ok(Outcome::Accepted { .. }) => self.update(id, |r| r.discontinued += 1),
                    Ok(other) => warn!(sku = %p.sku, outcome = ?other, "snapshot could not discontinue"),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    fn count(&self, id: &str, row: usize, outcome: Result<RowResult, (Option<String>, String)>) {
        self.update(id, |r| {
            r.read += 1;
            match outcome {
                Ok(RowResult::Created) => r.created += 1,
                Ok(RowResult::Updated) => r.updated += 1,
                Ok(RowResult::Unchanged) => r.unchanged += 1,
                Err((source_id, reason)) => {
                    r.rejected += 1;
                    r.rejections.push(RowRejection { row, source_id, reason });
                }
            }
        });
    }

    /// Sends a planned write and waits until the match tables hold its result.
    async fn carry_out(&self, source: &str, plan: Plan) -> Written {
        let (sku, cmd, expected) = match plan {
            Plan::Unchanged(sku) => return Written::Done(RowResult::Unchanged, sku),
            Plan::Write { sku, command, expected } => (sku, *command, expected),
        };
        let created = matches!(cmd, ProductCommand::Register(_));
        match self.send(&sku, cmd, Some(expected), source).await {
            Err(e) => Written::Failed(e),
            Ok(Outcome::Accepted { version, .. }) => {
                self.wait_folded(&sku, version).await;
                let result = if created {
                    RowResult::Created
                } else if version > expected {
                    RowResult::Updated
                } else {
                    RowResult::Unchanged
                };
                Written::Done(result, sku)
            }
            Ok(Outcome::Rejected { rejection: Rejection::VersionMismatch { .. } | Rejection::SkuTaken { .. } }) => {
                // A write landed between the merge and this one: wait until the
                // tables have it, then merge again.
                self.wait_folded(&sku, expected + 1).await;
                Written::Retry
            }
            Ok(Outcome::Rejected { rejection }) => Written::Rejected(rejection_reason(&rejection)),
            Ok(other) => Written::Rejected(format!("the write failed: {other:?}")),
        }
    }

    /// Waits (bounded) until the match tables hold `sku` at `version` or later.
    async fn wait_folded(&self, sku: &Sku, version: u64) {
        let mut folded = self.inner.folded.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if lock(&self.inner.view).products.get(sku).is_some_and(|p| p.version >= version) {
                return;
            }
            if tokio::time::timeout_at(deadline, folded.changed()).await.is_err() {
                return;
            }
        }
    }

    async fn send(
        &self,
        sku: &Sku,
        command: ProductCommand,
        expected: Option<u64>,
        source: &str,
    ) -> Result<Outcome, String> {
        let target = Target::Product { sku: sku.clone(), command };
        let body = serde_json::to_vec(&target).map_err(|e| e.to_string())?;
        let version = expected.unwrap_or_default().to_string();
        let digest = digest(&[b"ingest", source.as_bytes(), &body, version.as_bytes()]);
        let id = CommandId::parse(format!("i-{digest}")).map_err(|e| e.to_string())?;
        let cmd = CommandRecord {
            id: id.clone(),
            at: Timestamp(time::now_ms()),
            expected_version: expected,
            fingerprint: digest,
            reply_to: Some(self.inner.client.reply_to().to_owned()),
            target: target.routed(expected),
            notify: None,
        };
        for _ in 0..3 {
            match self.inner.client.submit(cmd.clone(), Some(id.to_string()), self.inner.write_timeout).await {
                Ok(Submitted::Done(Outcome::Unavailable { .. })) | Ok(Submitted::Pending) => continue,
                Ok(Submitted::Done(outcome)) => return Ok(outcome),
                Err(e) => return Err(format!("the event log did not take the write: {e}")),
            }
        }
        Err("the write's outcome stayed unknown; send the feed again".into())
    }

    fn record(&self, kind: &str, key: &str, payload: Vec<u8>) -> stockroom_topics::Record {
        let env = Envelope {
            id: format!("{kind}/{}", uuid::Uuid::new_v4().simple()),
            source: "/stockroom/ingest".to_owned(),
            event_type: kind.to_owned(),
            time_ms: time::now_ms(),
            subject: Some(key.to_owned()),
            schema_version: 1,
            correlation_id: None,
            causation_id: None,
            writer: None,
        };
        envelope::into_record(&env, Some(key.as_bytes().to_vec()), payload)
    }

    async fn append(&self, kind: &str, key: &str, payload: Vec<u8>) -> LogResult<()> {
        let record = self.record(kind, key, payload);
        let p = self.inner.log.partition_for_key(Topic::Sources, key.as_bytes());
        self.inner.log.append(Topic::Sources, p, vec![record]).await.map(|_| ())
    }
}

fn rejection_reason(r: &Rejection) -> String {
    match r {
        Rejection::GtinTaken { .. } => "gtin: another product has this GTIN".into(),
        Rejection::ProductDiscontinued { .. } => "sku: the product it matches is discontinued".into(),
        other => format!("{other:?}"),
    }
}

/// `{SOURCE}-{source_id}`, uppercased, other characters as `-`, at most 64.
fn derived_sku(source: &str, source_id: &str) -> Sku {
    let raw: String = format!("{source}-{source_id}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' { c.to_ascii_uppercase() } else { '-' })
        .take(64)
        .collect();
    Sku::parse(raw)
        .unwrap_or_else(|_| Sku::parse(format!("SRC-{}", &digest(&[source_id.as_bytes()])[..16])).expect("hex sku"))
}

/// Every record of the `sources` topic with its envelope, partition by partition.
async fn scan_sources(log: &EventLog, mut each: impl FnMut(&Envelope, &[u8])) -> LogResult<()> {
    for p in 0..log.partitions(Topic::Sources) {
        let p = Partition(p);
        let end = log.end_offset(Topic::Sources, p).await?;
        let mut reader = log.reader(Topic::Sources, &[(p, Offset(0))])?;
        let mut next = 0;
        while next < end.0 {
            let batch = reader.poll(4096, Duration::from_millis(500)).await?;
            for r in &batch {
                next = r.offset.0 + 1;
                if let Ok(env) = Envelope::from_headers(&r.record.headers) {
                    each(&env, &r.record.payload);
                }
            }
        }
    }
    Ok(())
}

/// What `sources` holds besides the raw rows: the definitions, the digest of the last
/// raw row of each key, and the runs' reports.
type SourcesTopic = (BTreeMap<String, SourceDef>, HashMap<String, String>, HashMap<String, RunReport>);

/// Reads [`SourcesTopic`] from the log. A run whose last report says `running` was cut
/// by a stop of its node: it is reported failed.
async fn read_sources_topic(log: &EventLog) -> LogResult<SourcesTopic> {
    let mut defs = BTreeMap::new();
    let mut kept = HashMap::new();
    let mut runs = HashMap::new();
    scan_sources(log, |env, payload| {
        if env.event_type == RUN_TYPE {
            if let Ok(mut report) = serde_json::from_slice::<RunReport>(payload) {
                report.restored = true;
                runs.insert(report.run_id.clone(), report);
            }
            return;
        }
        if env.event_type == ROW_TYPE {
            #[derive(serde::Deserialize)]
            struct Kept {
                digest: Option<String>,
            }
            if let (Some(key), Ok(Kept { digest: Some(d) })) =
                (env.subject.clone(), serde_json::from_slice::<Kept>(payload))
            {
                kept.insert(key, d);
            }
        } else if env.event_type == DEFINITION_TYPE {
            #[derive(serde::Deserialize)]
            struct Defined {
                name: String,
                definition: SourceDef,
            }
            if let Ok(d) = serde_json::from_slice::<Defined>(payload) {
                defs.insert(d.name, d.definition);
            }
        }
    })
    .await?;
    for report in runs.values_mut().filter(|r| r.state == "running") {
        report.state = "failed".into();
        report.error =
            Some("the node stopped during the run; send the feed again (what was written is not written twice)".into());
    }
    Ok((defs, kept, runs))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
