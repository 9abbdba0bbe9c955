//! Snapshots of an optimizer's state, written and read in one place: the
//! optimizer's name, the version of its state format and the dimension of
//! the space are checked here, so that a snapshot restores only into the
//! optimizer, format and space it was taken from (anything else is a clear
//! error, and a study then replays its trials instead).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Snapshot;
use crate::error::{Error, Result};

/// Key under which a snapshot's state records the dimension it was taken
/// for. Added beside the state's own fields, so the state keeps its shape:
/// snapshots written before the key existed still restore (unchecked), and
/// older code reading a newer snapshot ignores the key.
const DIM_KEY: &str = "dim";

/// An optimizer's name and the version of its serialized state, with the
/// snapshot and restore that check them.
///
/// Bump `version` when the state's fields change in a way old snapshots
/// cannot be read as: a resumed study then replays its trials instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateCodec {
    /// The registry name (also [`super::Optimizer::name`]).
    pub name: &'static str,
    /// Version of the serialized state format.
    pub version: u32,
}

impl StateCodec {
    /// The codec of optimizer `name` with state format `version`.
    pub const fn new(name: &'static str, version: u32) -> Self {
        StateCodec { name, version }
    }

    /// A snapshot of `state`, taken in a space of `dim` parameters.
    pub fn snapshot<T: Serialize>(&self, state: &T, dim: usize) -> Result<Snapshot> {
        let mut state = serde_json::to_value(state).map_err(Error::json)?;
        if let serde_json::Value::Object(fields) = &mut state {
            fields.insert(DIM_KEY.into(), dim.into());
        }
        Ok(Snapshot { optimizer: self.name.to_string(), version: self.version, state })
    }

    /// The state a snapshot holds, checked to be of this optimizer, of this
    /// format version and taken in a space of `dim` parameters.
    pub fn restore<T: DeserializeOwned>(&self, snapshot: &Snapshot, dim: usize) -> Result<T> {
        if snapshot.optimizer != self.name {
            return Err(self.error(format!("snapshot is from optimizer `{}`", snapshot.optimizer)));
        }
        if snapshot.version != self.version {
            return Err(self.error(format!(
                "snapshot format version {} is not {}; the study will be replayed instead",
                snapshot.version, self.version
            )));
        }
        if let Some(stamp) = snapshot.state.get(DIM_KEY) {
            match stamp.as_u64() {
                Some(found) if found == dim as u64 => {}
                Some(found) => return Err(self.wrong_dim(found as usize, dim)),
                None => return Err(self.error(format!("snapshot has a malformed dimension `{stamp}`"))),
            }
        }
        serde_json::from_value(snapshot.state.clone())
            .map_err(|e| self.error(format!("snapshot does not match this version: {e}")))
    }

    /// The error for a snapshot of a `found`-dimensional space restored into
    /// a space of `dim` parameters.
    pub fn wrong_dim(&self, found: usize, dim: usize) -> Error {
        self.error(format!("snapshot is for {found} parameters, the space has {dim}"))
    }

    /// An error of this optimizer.
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::optimizer(self.name, message)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct State {
        next: u64,
    }

    const CODEC: StateCodec = StateCodec::new("demo", 2);

    #[test]
    fn restores_what_it_snapshotted_in_the_same_space_only() {
        let snap = CODEC.snapshot(&State { next: 7 }, 3).unwrap();
        assert_eq!(CODEC.restore::<State>(&snap, 3).unwrap(), State { next: 7 });
        let err = CODEC.restore::<State>(&snap, 4).unwrap_err().to_string();
        assert!(err.contains("for 3 parameters, the space has 4"), "{err}");
        let other = StateCodec::new("other", 2).restore::<State>(&snap, 3).unwrap_err().to_string();
        assert!(other.contains("from optimizer `demo`"), "{other}");
        let newer = StateCodec::new("demo", 3).restore::<State>(&snap, 3).unwrap_err().to_string();
        assert!(newer.contains("version 2 is not 3"), "{newer}");
    }

    #[test]
    fn a_snapshot_without_a_dimension_still_restores() {
        // Written before snapshots recorded their dimension.
        let old = Snapshot { optimizer: "demo".into(), version: 2, state: serde_json::json!({"next": 5}) };
        assert_eq!(CODEC.restore::<State>(&old, 9).unwrap(), State { next: 5 });
    }
}
