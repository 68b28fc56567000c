//! (stub, being written)
use super::{PartitionTable, TableError};
use crate::io::ReadAt;

/// Find and parse the partition table of a disk or image (stub).
pub fn read_table(_r: &dyn ReadAt, _sector_size: u32) -> Result<PartitionTable, TableError> {
    Err(TableError::NotFound("not implemented".into()))
}
