//! One durable partition as an append-only file: a frame per record, a CRC per frame,
//! recovery that cuts a torn tail.
//!
//! # Frame
//!
//! ```text
//! length u32 LE | crc32 u32 LE | offset u64 LE | record (codec::encode), `length` bytes
//! ```
//!
//! The CRC (crc32fast, IEEE) covers the offset and the record. Offsets are implicit
//! in the order of frames (the first frame is offset 0); the stored offset is a check
//! that a frame is where it belongs.
//!
//! # Recovery
//!
//! Opening a partition reads its file from the start, checks every frame and builds
//! a sparse index (the position of every [`STRIDE`]th record). The first frame that
//! is short, fails its CRC or carries the wrong offset ends the log: the file is cut
//! there and synced. Appends reach the disk in order and an append is acknowledged
//! only after the `fdatasync` that covers it, so what is cut was never acknowledged —
//! a torn tail from a crash mid-write.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use tracing::warn;

use super::codec;
use crate::record::Record;

/// Bytes before a frame's record.
pub(crate) const HEADER: usize = 16;
/// Every `STRIDE`th record's position is kept in memory.
pub(crate) const STRIDE: u64 = 64;
/// How much a reader or the recovery scan reads at once.
const CHUNK: usize = 256 * 1024;
/// A frame longer than this is corruption, not a record (the broker-side limit on a
/// record is far below it).
const MAX_RECORD: u32 = 256 * 1024 * 1024;

/// Appends `record` as a frame at `offset` to `out`.
pub(crate) fn encode_frame(offset: u64, record: &Record, out: &mut Vec<u8>) {
    let body = codec::encode(record);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&offset.to_le_bytes());
    crc.update(&body);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&body);
}

/// A frame's header, checked against what the reader expects.
struct FrameHeader {
    len: usize,
    crc: u32,
    offset: u64,
}

fn header(bytes: &[u8]) -> FrameHeader {
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&bytes[8..16]);
    FrameHeader { len: u32_at(0) as usize, crc: u32_at(4), offset: u64::from_le_bytes(offset) }
}

fn crc_ok(h: &FrameHeader, body: &[u8]) -> bool {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h.offset.to_le_bytes());
    crc.update(body);
    crc.finalize() == h.crc
}

/// A durable partition: its file, its durable end and its sparse index.
pub(crate) struct FilePartition {
    pub path: PathBuf,
    /// The next offset after the last record known durable; readers stop there.
    pub end: AtomicU64,
    /// `index[i]` is the file position of offset `i * STRIDE`. Only entries below the
    /// durable end are read.
    index: RwLock<Vec<u64>>,
}

/// What recovery found in a partition's file; the appender continues from here.
pub(crate) struct Recovered {
    pub partition: FilePartition,
    pub file: File,
    /// Bytes of whole, checked frames.
    pub len: u64,
}

impl FilePartition {
    /// Opens (or creates) the file at `path`, checks it and cuts a torn tail.
    pub fn open(path: &Path) -> io::Result<Recovered> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let size = file.metadata()?.len();
        let mut index = Vec::new();
        let mut cursor = Cursor::new(0, 0);
        let mut next = 0u64;
        let why = loop {
            if next.is_multiple_of(STRIDE) {
                index.push(cursor.position());
            }
            match cursor.frame(&file, next, false) {
                Ok(Some(_)) => next += 1,
                Ok(None) if cursor.position() == size => break None,
                Ok(None) => break Some("a frame is cut short".to_owned()),
                Err(Damaged(why)) => break Some(why),
            }
        };
        if next.is_multiple_of(STRIDE) {
            // The entry for the next offset, not yet written.
            index.pop();
        }
        let len = cursor.position();
        if let Some(why) = why {
            warn!(
                path = %path.display(),
                kept_records = next,
                cut_bytes = size - len,
                reason = %why,
                "the log ends in a torn or damaged frame; cutting it there (after a crash mid-write: \
                 records never acknowledged; otherwise the disk damaged the file)"
            );
            file.set_len(len)?;
            file.sync_all()?;
        }
        let partition = FilePartition { path: path.to_owned(), end: AtomicU64::new(next), index: RwLock::new(index) };
        Ok(Recovered { partition, file, len })
    }

    fn index(&self) -> RwLockReadGuard<'_, Vec<u64>> {
        // The vector is only ever pushed to: consistent even after a panic.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the appender for each record it writes at `offset`, `position`.
    pub fn indexed(&self, offset: u64, position: u64) {
        if offset.is_multiple_of(STRIDE) {
            self.index.write().unwrap_or_else(|e| e.into_inner()).push(position);
        }
    }

    /// A cursor at the indexed record at or before `offset`, which must be below the
    /// durable end (so that record is written and indexed). The caller skips
    /// forward to `offset`.
    pub fn cursor_near(&self, offset: u64) -> Cursor {
        let index = self.index();
        let slot = ((offset / STRIDE) as usize).min(index.len().saturating_sub(1));
        Cursor::new(index.get(slot).copied().unwrap_or(0), slot as u64 * STRIDE)
    }

    pub fn durable_end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }
}

/// Why a frame cannot be read.
pub(crate) struct Damaged(pub String);

/// A position in a partition's file with a read-ahead buffer: a reader's place, or
/// the recovery scan's.
pub(crate) struct Cursor {
    /// File position of `buf[0]`.
    start: u64,
    buf: Vec<u8>,
    /// Index in `buf` of the next frame.
    at: usize,
    /// Offset of the next frame.
    pub offset: u64,
}

impl Cursor {
    fn new(position: u64, offset: u64) -> Cursor {
        Cursor { start: position, buf: Vec::new(), at: 0, offset }
    }

    pub fn position(&self) -> u64 {
        self.start + self.at as u64
    }

    /// Makes at least `n` bytes from the next frame available; false if the file
    /// holds fewer.
    fn fill(&mut self, file: &File, n: usize) -> io::Result<bool> {
        if self.buf.len() - self.at >= n {
            return Ok(true);
        }
        self.buf.drain(..self.at);
        self.start += self.at as u64;
        self.at = 0;
        let want = n.max(CHUNK);
        while self.buf.len() < n {
            let have = self.buf.len();
            self.buf.resize(want, 0);
            let read = file.read_at(&mut self.buf[have..], self.start + have as u64);
            let read = match read {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.buf.truncate(have);
                    return Err(e);
                }
            };
            self.buf.truncate(have + read);
            if read == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the frame at this cursor, expected to be `offset`; `decode` false skips
    /// the record (the caller only wants to move past it). `Ok(None)`: the file ends
    /// here or within the frame.
    pub fn frame(&mut self, file: &File, offset: u64, decode: bool) -> Result<Option<Option<Record>>, Damaged> {
        let io = |e: io::Error| Damaged(format!("cannot read the log file: {e}"));
        if !self.fill(file, HEADER).map_err(io)? {
            return Ok(None);
        }
        let h = header(&self.buf[self.at..self.at + HEADER]);
        if h.len as u64 > MAX_RECORD as u64 {
            return Err(Damaged(format!("a frame claims {} bytes", h.len)));
        }
        if !self.fill(file, HEADER + h.len).map_err(io)? {
            return Ok(None);
        }
        let body = &self.buf[self.at + HEADER..self.at + HEADER + h.len];
        if !crc_ok(&h, body) {
            return Err(Damaged("a frame fails its CRC".into()));
        }
        if h.offset != offset {
            return Err(Damaged(format!("the frame for offset {offset} says {}", h.offset)));
        }
        let record = if decode { Some(codec::decode(body).map_err(Damaged)?) } else { None };
        self.at += HEADER + h.len;
        self.offset = offset + 1;
        Ok(Some(record))
    }
}

/// The appender's handle on one partition's file.
pub(crate) struct FileWriter {
    /// Shared with the thread that syncs it.
    file: Arc<File>,
    /// Bytes written (durable or not).
    len: u64,
    /// Frames of this group not yet written.
    pending: Vec<u8>,
}

impl FileWriter {
    pub fn new(file: File, len: u64) -> FileWriter {
        FileWriter { file: Arc::new(file), len, pending: Vec::new() }
    }

    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Adds a frame for `offset` to this group's bytes; returns its file position.
    pub fn push(&mut self, offset: u64, record: &Record) -> u64 {
        let position = self.len + self.pending.len() as u64;
        encode_frame(offset, record, &mut self.pending);
        position
    }

    /// Writes this group's frames (one `pwrite`); whether there were any. The sync
    /// comes after.
    pub fn write(&mut self) -> io::Result<bool> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        self.file.write_all_at(&self.pending, self.len)?;
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(true)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes the directory's entries (a created or renamed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The whole of a small file, or `None` if it does not exist.
pub(crate) fn read_small(path: &Path) -> io::Result<Option<String>> {
    match File::open(path) {
        Ok(mut f) => {
            let mut s = String::new();
            f.read_to_string(&mut s)?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
