//! A study's spec as storage keeps it, in one place: what is written when a
//! study is created, how it is read back (by `knobs worker --study`,
//! `knobs recommend NAME`, the server), and the check that a spec opening an
//! existing study did not change what shapes the search.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::storage::StudyRecord;

/// A spec as a study stores it: its identity beside the whole spec.
pub(crate) fn stored_spec(spec: &Spec) -> serde_json::Value {
    serde_json::json!({ "identity": spec.identity(), "spec": spec })
}

/// The spec a study was created with; relative paths in it resolve against
/// `base_dir`.
pub fn read_spec(record: &StudyRecord, base_dir: PathBuf) -> Result<Spec> {
    let name = &record.name;
    let stored = record.spec.get("spec").cloned().ok_or_else(|| {
        Error::Storage(format!("study `{name}`: its stored spec has no `spec` field; it was not created by knobs"))
    })?;
    let mut spec: Spec = serde_json::from_value(stored)
        .map_err(|e| Error::Storage(format!("study `{name}`: its stored spec cannot be read by this knobs: {e}")))?;
    spec.base_dir = base_dir;
    Ok(spec)
}

/// Refuse a spec whose space, objectives, optimizer or seed differ from those
/// the stored study was created with, saying what changed.
pub(crate) fn check_identity(spec: &Spec, existing: &StudyRecord) -> Result<()> {
    let old = existing.spec.get("identity").cloned().unwrap_or_default();
    if old == spec.identity() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "study `{}` was created with a different {}; a study's space, objectives, optimizer and seed \
         cannot change. Give the spec a new `name` to start a new study",
        spec.name,
        identity_diff(&old, &spec.identity())
    )))
}

fn identity_diff(old: &serde_json::Value, new: &serde_json::Value) -> String {
    let keys = ["space", "objectives", "optimizer", "seed"];
    let changed: Vec<&str> = keys.iter().copied().filter(|k| old.get(*k) != new.get(*k)).collect();
    if changed.is_empty() { "spec".to_string() } else { changed.join(", ") }
}
