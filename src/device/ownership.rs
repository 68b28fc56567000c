//! (stub, being written)
use serde::Serialize;
/// Whether a disk may be written (stub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reasons", rename_all = "snake_case")]
pub enum Ownership {
    Unused,
    InUse(Vec<String>),
}
