//! Home Assistant backups: the outer tar, `backup.json`, and (later) SecureTar.
//!
//! This module owns everything about backup files. For now: listing a backup's members
//! without reading their bodies ([`tarscan`]) and summarising its `backup.json` ([`meta`]),
//! which `inspect` uses for the backups found on a data partition.

pub mod meta;
pub mod tarscan;

use crate::io::ReadAt;
use anyhow::{Context, Result};

/// Read the `backup.json` (or legacy `snapshot.json`) of an outer backup tar and summarise it.
pub fn read_summary(r: &dyn ReadAt, what: &str) -> Result<meta::BackupSummary> {
    let members = tarscan::list(r, 4096).with_context(|| format!("{what}: reading the tar"))?;
    let m = members
        .iter()
        .find(|m| m.name == "./backup.json")
        .or_else(|| members.iter().find(|m| m.name == "./snapshot.json"))
        .or_else(|| {
            members
                .iter()
                .find(|m| tarscan::normalise(&m.name) == "backup.json")
        })
        .with_context(|| format!("{what}: no ./backup.json inside: not a Home Assistant backup"))?;
    if m.size > meta::MAX_BACKUP_JSON {
        anyhow::bail!(
            "{what}: backup.json is {} bytes, more than the {} a real one has",
            m.size,
            meta::MAX_BACKUP_JSON
        );
    }
    let body = crate::io::read_vec(r, m.data_offset, m.size as usize)
        .with_context(|| format!("{what}: reading backup.json"))?;
    let mut s = meta::summarise(&body).with_context(|| format!("{what}: parsing backup.json"))?;
    s.size = r.len();
    s.members = members
        .iter()
        .filter(|m| m.kind == tarscan::MemberKind::File)
        .map(|m| tarscan::normalise(&m.name).to_string())
        .filter(|n| n != "backup.json" && n != "snapshot.json")
        .collect();
    if m.name != "./backup.json" {
        s.problems.push(format!(
            "metadata member is named '{}', Home Assistant looks for exactly './backup.json'",
            m.name
        ));
    }
    Ok(s)
}
