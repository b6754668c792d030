//! Moving a log written by an earlier Stockroom (a sled database, one tree per
//! partition keyed by the offset in 8 big-endian bytes) into partition files.
//!
//! The copy writes every file whole and syncs it; the caller writes the meta file
//! after it and only then removes sled's files. A crash before the meta file exists
//! leaves the sled log in place, and the next open copies again from the start.

use std::fs::OpenOptions;
use std::path::Path;

use tracing::info;

use super::file::{FileWriter, sync_dir};
use super::{codec, partition_file};
use crate::error::{LogError, LogResult};
use crate::ids::{Offset, Partition};
use crate::topic::{Topic, TopicLayout, TopicNames};

const META_TREE: &str = "__stockroom_meta";
const PARTITIONS_KEY: &str = "partitions";
/// The files and directories of a sled 0.34 database.
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];

/// Whether `dir` holds a sled log (and no log of the file format, checked by the caller).
pub(crate) fn has_sled_log(dir: &Path) -> bool {
    dir.join("conf").exists() && dir.join("db").exists()
}

/// Copies every durable partition of the sled log in `dir` into its file; returns the
/// partition count.
pub(crate) fn from_sled(dir: &Path, names: &TopicNames) -> LogResult<u32> {
    let db = sled::Config::new().path(dir).open()?;
    let meta = db.open_tree(META_TREE)?;
    let count = meta
        .get(PARTITIONS_KEY)?
        .and_then(|v| v.as_ref().try_into().ok().map(u32::from_be_bytes))
        .ok_or_else(|| LogError::Other(format!("the sled log in {} has no partition count", dir.display())))?;
    let layout = TopicLayout { names: names.clone(), partitions: count };
    // Every tree that holds records must be one this copy takes: a log written under
    // another topic prefix would otherwise be left out, and then deleted with sled's
    // files.
    let ours: Vec<String> = Topic::ALL
        .into_iter()
        .filter(|t| t.is_durable_embedded())
        .flat_map(|t| (0..layout.partitions(t)).map(move |p| (t, p)))
        .map(|(t, p)| format!("{}/{p}", layout.names.name(t)))
        .collect();
    for name in db.tree_names() {
        let name = String::from_utf8_lossy(&name).into_owned();
        if name == META_TREE || name == "__sled__default" || ours.contains(&name) {
            continue;
        }
        if !db.open_tree(&name)?.is_empty() {
            return Err(LogError::Other(format!(
                "the sled log in {} holds records under {name:?}, which is not a partition of the topics {:?}; \
                 open it with the topic prefix it was written with (--topic-prefix) so that it can be converted",
                dir.display(),
                layout.names.name(Topic::Events),
            )));
        }
    }
    let mut copied = 0u64;
    for topic in Topic::ALL.into_iter().filter(|t| t.is_durable_embedded()) {
        for p in 0..layout.partitions(topic) {
            let partition = Partition(p);
            let tree = db.open_tree(format!("{}/{}", layout.names.name(topic), p))?;
            let path = dir.join(partition_file(&layout, topic, partition));
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
            let mut writer = FileWriter::new(file, 0);
            for (expected, item) in (0u64..).zip(tree.iter()) {
                let (key, value) = item?;
                let corrupt = |reason: String| LogError::Corrupt { topic, partition, offset: Offset(expected), reason };
                let offset: [u8; 8] = key.as_ref().try_into().map_err(|_| corrupt("bad offset key".into()))?;
                if u64::from_be_bytes(offset) != expected {
                    return Err(corrupt("the sled log has a hole".into()));
                }
                writer.push(expected, &codec::decode(&value).map_err(corrupt)?);
                copied += 1;
                if expected % 4096 == 4095 {
                    writer.write()?;
                }
            }
            writer.write()?;
            writer.sync()?;
        }
    }
    sync_dir(dir)?;
    info!(records = copied, partitions = count, dir = %dir.display(), "copied the sled log into partition files");
    Ok(count)
}

/// Removes sled's files once the partition files and the meta file are durable.
pub(crate) fn remove_sled_files(dir: &Path) -> LogResult<()> {
    for name in SLED_FILES {
        let path = dir.join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else if path.exists() {
            std::fs::remove_file(&path)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::remove_file(entry.path())?;
        }
    }
    sync_dir(dir)?;
    Ok(())
}
