//! (stub, being written)
use std::path::PathBuf;
/// Root under which `sys/`, `proc/`, `dev/` and `run/udev` are read (stub).
#[derive(Debug, Clone)]
pub struct SysRoot(pub PathBuf);
/// Discover whole disks (stub).
pub fn discover(_root: &SysRoot) -> anyhow::Result<Vec<super::Disk>> {
    Ok(vec![])
}
