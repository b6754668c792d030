//! Answers of the current catalog generation, for searches that repeat.
//!
//! A search's answer depends only on its request and on what the index holds, and
//! the index changes only when the projector commits (a new searcher generation). So
//! an answer computed on one generation is served again, unchanged, to the same
//! request until the next commit, as Solr's `queryResultCache` does per searcher. The
//! first search of a new generation empties the cache; so does reaching
//! [`CAPACITY`] answers (a bound, not a policy). Shoppers' queries repeat (the head
//! of the distribution); under a steady write load the catalog commits several times
//! a second, and the cache serves only what repeats between two commits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::search::{SearchRequest, SearchResponse};

/// The most answers kept (a page is up to 100 views: at most some tens of MB).
pub const CAPACITY: usize = 1_024;

#[derive(Debug, Default)]
pub(super) struct Answers {
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    generation: u64,
    answers: HashMap<SearchRequest, SearchResponse>,
}

impl Answers {
    /// The answer to `request` computed on `generation`, if there is one.
    pub(super) fn get(&self, generation: u64, request: &SearchRequest) -> Option<SearchResponse> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let found = (entries.generation == generation).then(|| entries.answers.get(request).cloned()).flatten();
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `answer`, computed on `generation` (dropped if a newer generation has
    /// been seen since: generations only grow).
    pub(super) fn put(&self, generation: u64, request: &SearchRequest, answer: &SearchResponse) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if generation < entries.generation {
            return;
        }
        if generation > entries.generation || entries.answers.len() >= CAPACITY {
            entries.answers.clear();
            entries.generation = generation;
        }
        entries.answers.insert(request.clone(), answer.clone());
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).answers.len()
    }

    /// Searches answered from the cache, and searches computed, since the catalog opened.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }
}
