//! (stub, being written)
use serde::Serialize;
/// How a disk is attached (stub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transport {
    Unknown,
}
