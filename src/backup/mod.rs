//! Home Assistant backups: the outer tar, `backup.json`, SecureTar, and what `lifeboat backup`
//! does with them.
//!
//! Reading: [`tarscan`] walks outer-tar headers, [`archive`] opens a backup (members, the
//! exact `./backup.json`), [`meta`] summarises it, [`inner`] turns an inner archive into a
//! stream (decrypted by [`securetar`], un-gzipped by [`gzip`], walked as a tar), [`pipe`]
//! runs decryption on a second core. Commands: [`check`] (with the rules in [`validate`]),
//! [`extract`], [`decrypt`]. Writing (for issue 7 and `decrypt`): [`securetar::Writer`],
//! [`securetar::EncryptionKey`] and [`writer::BackupWriter`]. Passwords: [`password`].
//! Primitives: [`crypto`], [`secretstream`].
//!
//! Recovery from a card or image (issue 7): [`card`] opens its data partition without
//! mounting; [`create`] makes a Supervisor-format backup from it (by Home Assistant's own
//! exclusion [`rules`], with the recorder database checked by [`sqlite`]); [`rescue`] copies
//! the backups it holds off it; [`report`] lists what a restore will not bring back;
//! [`isotime`] reads and writes backup dates. [`onimage`] opens a backup in place on such a
//! card or image for `check`, `extract` and `decrypt`.

pub mod archive;
pub mod card;
pub mod check;
pub mod create;
pub mod crypto;
pub mod decrypt;
pub mod extract;
pub mod gzip;
pub mod inner;
pub mod isotime;
pub mod meta;
pub mod onimage;
pub mod password;
pub mod pipe;
pub mod report;
pub mod rescue;
pub mod rules;
pub mod secretstream;
pub mod securetar;
pub mod sqlite;
pub mod tarscan;
pub mod validate;
pub mod writer;

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
    s.encryption = members
        .iter()
        .find(|m| archive::is_inner_archive(m))
        .and_then(|m| {
            let mut head = vec![0u8; m.size.min(512) as usize];
            r.read_exact_at(&mut head, m.data_offset).ok()?;
            match securetar::sniff(&head) {
                securetar::Kind::SecureTar(v) => Some(v),
                securetar::Kind::Unknown if s.protected => Some(securetar::Version::V1),
                _ => None,
            }
        });
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
