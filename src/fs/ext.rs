//! (stub, being written)

/// Probe (stub).
pub fn probe(_head: &[u8]) -> Option<super::FsInfo> {
    None
}
