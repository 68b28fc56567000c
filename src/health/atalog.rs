//! ATA SMART logs, pure decoders: the SMART summary error log (log address 0x01) and the
//! SMART self-test log (0x06), both read with SMART READ LOG (0xB0/0xD5), and their
//! general-purpose (READ LOG EXT) counterparts, the extended comprehensive error log (0x03)
//! and the extended self-test log (0x07). Layouts: ATA/ACS-3 §9 (A.14 SMART self-test
//! log, A.20 summary error log, A.6 extended comprehensive error log, A.7 extended
//! self-test log) and smartmontools `atacmds.h` for the names of the fields. Entries come
//! out newest first, as smartctl prints them. Every decoder takes bytes and returns a value
//! or an error; none panics on any input.

use anyhow::{Result, bail};
use serde::Serialize;

/// Log addresses.
pub const SUMMARY_ERROR_LOG: u8 = 0x01;
pub const EXT_COMPREHENSIVE_ERROR_LOG: u8 = 0x03;
pub const SELF_TEST_LOG: u8 = 0x06;
pub const EXT_SELF_TEST_LOG: u8 = 0x07;
/// The General Purpose log directory (READ LOG EXT address 0).
pub const GP_LOG_DIRECTORY: u8 = 0x00;

/// Pages the GP log directory lists for log `addr` (word `addr`; word 0 is the version).
/// 0 when the log is absent or the directory is short or empty.
pub fn gp_log_pages(dir: &[u8], addr: u8) -> u16 {
    let i = 2 * usize::from(addr);
    if addr == 0 || dir.len() < PAGE || u16le(dir, 0) == 0 {
        return 0;
    }
    u16le(dir, i)
}

const PAGE: usize = 512;

fn need(b: &[u8], what: &str) -> Result<()> {
    if b.len() < PAGE {
        bail!("{what}: {} bytes, expected {PAGE}", b.len());
    }
    Ok(())
}

fn checksum_ok(b: &[u8]) -> bool {
    b[..PAGE].iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
}

fn u16le(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32le(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

// ------------------------------------------------------------------------------------------
// Self-test logs

/// What kind of test a self-test log entry records (the LBA low register of SMART
/// EXECUTE OFF-LINE IMMEDIATE).
pub fn test_type_text(t: u8) -> &'static str {
    match t {
        0x00 => "Offline",
        0x01 => "Short offline",
        0x02 => "Extended offline",
        0x03 => "Conveyance offline",
        0x04 => "Selective offline",
        0x81 => "Short captive",
        0x82 => "Extended captive",
        0x83 => "Conveyance captive",
        0x84 => "Selective captive",
        0x40..=0x7E | 0x90..=0xFF => "Vendor",
        _ => "Reserved",
    }
}

/// The result nibble (high four bits of the status byte) in words, as smartctl says it.
pub fn result_text(result: u8) -> &'static str {
    match result {
        0 => "Completed without error",
        1 => "Aborted by host",
        2 => "Interrupted (host reset)",
        3 => "Fatal or unknown error",
        4 => "Completed: unknown failure",
        5 => "Completed: electrical failure",
        6 => "Completed: servo/seek failure",
        7 => "Completed: read failure",
        8 => "Completed: handling damage",
        15 => "Self-test routine in progress",
        _ => "Unknown status",
    }
}

/// One self-test log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfTestEntry {
    /// Test type (LBA low register value of the command that started it).
    pub test_type: u8,
    pub test_type_text: &'static str,
    /// The whole status byte (smartctl's `status.value`).
    pub status: u8,
    /// High nibble: 0 passed, 1–2 interrupted, 3–8 failed, 15 running.
    pub result: u8,
    pub result_text: &'static str,
    /// `true` passed, `false` failed, `null` aborted, interrupted or still running.
    pub passed: Option<bool>,
    /// Low nibble × 10: percent of the test left when it ended.
    pub remaining_percent: u8,
    /// Power-on hours when the test ended.
    pub lifetime_hours: u16,
    /// Self-test failure checkpoint byte (vendor meaning).
    pub checkpoint: u8,
    /// LBA of the first failure, for failed tests only.
    pub failing_lba: Option<u64>,
}

impl SelfTestEntry {
    fn new(test_type: u8, status: u8, hours: u16, checkpoint: u8, lba: u64) -> Self {
        let result = status >> 4;
        let passed = match result {
            0 => Some(true),
            3..=8 => Some(false),
            _ => None,
        };
        SelfTestEntry {
            test_type,
            test_type_text: test_type_text(test_type),
            status,
            result,
            result_text: result_text(result),
            passed,
            remaining_percent: (status & 0x0F).saturating_mul(10),
            lifetime_hours: hours,
            checkpoint,
            failing_lba: (passed == Some(false)).then_some(lba),
        }
    }
}

/// A self-test log, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfTestLog {
    /// `standard` (SMART READ LOG 0x06) or `extended` (READ LOG EXT 0x07).
    pub kind: &'static str,
    pub revision: u16,
    /// Entries held, newest first.
    pub entries: Vec<SelfTestEntry>,
    /// The page's checksum byte is right (always true for the extended log, which has
    /// one per page but many drives leave it zero: `null` there).
    pub checksum_ok: Option<bool>,
}

impl SelfTestLog {
    /// The newest test that ended in a pass or a failure (skipping aborted, interrupted and
    /// running ones), if it failed.
    pub fn last_completed_failure(&self) -> Option<&SelfTestEntry> {
        self.entries
            .iter()
            .find(|e| e.passed.is_some())
            .filter(|e| e.passed == Some(false))
    }
    /// Failed tests older than a later passing one.
    pub fn earlier_failures(&self) -> usize {
        let Some(first_pass) = self.entries.iter().position(|e| e.passed == Some(true)) else {
            return 0;
        };
        self.entries[first_pass..]
            .iter()
            .filter(|e| e.passed == Some(false))
            .count()
    }
}

/// Decode the SMART self-test log (log address 0x06, one 512-byte page): revision in bytes
/// 0–1, 21 entries of 24 bytes from byte 2 in a ring, the index of the newest entry
/// (1-based, 0 = none) at byte 508, the checksum at 511.
pub fn parse_self_test_log(b: &[u8]) -> Result<SelfTestLog> {
    need(b, "SMART self-test log")?;
    let b = &b[..PAGE];
    let newest = b[508];
    if newest > 21 {
        bail!("SMART self-test log: newest-entry index {newest} is past the 21 entries");
    }
    let mut entries = Vec::new();
    if newest > 0 {
        // Newest first, walking the ring backwards.
        for i in 0..21 {
            let slot = (usize::from(newest) - 1 + 21 - i) % 21;
            let e = &b[2 + slot * 24..2 + slot * 24 + 24];
            if e.iter().all(|&x| x == 0) {
                continue;
            }
            entries.push(SelfTestEntry::new(
                e[0],
                e[1],
                u16le(e, 2),
                e[4],
                u64::from(u32le(e, 5) & 0x0FFF_FFFF),
            ));
        }
    }
    Ok(SelfTestLog {
        kind: "standard",
        revision: u16le(b, 0),
        entries,
        checksum_ok: Some(checksum_ok(b)),
    })
}

/// Decode the extended self-test log (log address 0x07, READ LOG EXT), one or more
/// 512-byte pages: byte 0 version, bytes 2–3 the newest descriptor's index (1-based over
/// all pages, 0 = none), 19 descriptors of 26 bytes per page from byte 4, each with a 48-bit
/// failing LBA.
pub fn parse_ext_self_test_log(b: &[u8]) -> Result<SelfTestLog> {
    need(b, "extended self-test log")?;
    let pages = b.len() / PAGE;
    let slots = pages * 19;
    let newest = usize::from(u16le(b, 2));
    if newest > slots {
        bail!(
            "extended self-test log: newest-descriptor index {newest} is past the {slots} \
             descriptors of {pages} page(s)"
        );
    }
    let mut entries = Vec::new();
    if newest > 0 {
        for i in 0..slots {
            let slot = (newest - 1 + slots - i) % slots;
            let at = (slot / 19) * PAGE + 4 + (slot % 19) * 26;
            let e = &b[at..at + 26];
            if e.iter().all(|&x| x == 0) {
                continue;
            }
            let lba = u64::from(u32le(e, 5)) | (u64::from(u16le(e, 9)) << 32);
            entries.push(SelfTestEntry::new(e[0], e[1], u16le(e, 2), e[4], lba));
        }
    }
    Ok(SelfTestLog {
        kind: "extended",
        revision: u16::from(b[0]),
        entries,
        checksum_ok: None,
    })
}

// ------------------------------------------------------------------------------------------
// Error logs

/// The error register's bits, by name (ATA/ACS: ICRC, UNC, MC, IDNF, MCR, ABRT, NM, AMNF).
pub fn error_register_names(e: u8) -> Vec<&'static str> {
    [
        (0x80, "ICRC"),
        (0x40, "UNC"),
        (0x20, "MC"),
        (0x10, "IDNF"),
        (0x08, "MCR"),
        (0x04, "ABRT"),
        (0x02, "NM"),
        (0x01, "AMNF"),
    ]
    .iter()
    .filter(|(bit, _)| e & bit != 0)
    .map(|(_, n)| *n)
    .collect()
}

/// The device state when the error happened (error data byte 27, low nibble).
pub fn state_text(s: u8) -> &'static str {
    match s & 0x0F {
        0 => "unknown",
        1 => "sleep",
        2 => "standby",
        3 => "active or idle",
        4 => "executing SMART off-line or self-test",
        _ => "vendor or reserved",
    }
}

/// Common ATA commands by opcode, for the command that failed.
pub fn command_name(c: u8) -> &'static str {
    match c {
        0x20 | 0x21 => "READ SECTOR(S)",
        0x24 => "READ SECTOR(S) EXT",
        0x25 => "READ DMA EXT",
        0x29 => "READ MULTIPLE EXT",
        0x2F => "READ LOG EXT",
        0x30 | 0x31 => "WRITE SECTOR(S)",
        0x34 => "WRITE SECTOR(S) EXT",
        0x35 => "WRITE DMA EXT",
        0x39 => "WRITE MULTIPLE EXT",
        0x40 | 0x41 => "READ VERIFY SECTOR(S)",
        0x42 => "READ VERIFY SECTOR(S) EXT",
        0x60 => "READ FPDMA QUEUED",
        0x61 => "WRITE FPDMA QUEUED",
        0xB0 => "SMART",
        0xC4 => "READ MULTIPLE",
        0xC5 => "WRITE MULTIPLE",
        0xC8 | 0xC9 => "READ DMA",
        0xCA | 0xCB => "WRITE DMA",
        0xE7 => "FLUSH CACHE",
        0xEA => "FLUSH CACHE EXT",
        0xEC => "IDENTIFY DEVICE",
        0xEF => "SET FEATURES",
        _ => "other",
    }
}

/// One command that led up to an error (the failing one is first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCommand {
    pub command: u8,
    pub command_name: &'static str,
    pub features: u16,
    pub count: u16,
    pub lba: u64,
    pub device: u8,
    /// Milliseconds since power-on when the command was issued (wraps).
    pub timestamp_ms: u32,
}

/// One error log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorEntry {
    /// The error's number in the drive's lifetime count, as smartctl numbers them.
    pub error_number: u32,
    /// Power-on hours when the error happened.
    pub lifetime_hours: u16,
    pub state: u8,
    pub state_text: &'static str,
    pub error_register: u8,
    /// The error register's bits by name (`UNC`, `IDNF`, `ABRT`, …).
    pub error_bits: Vec<&'static str>,
    pub status_register: u8,
    pub count: u16,
    /// The LBA the error register refers to.
    pub lba: u64,
    /// The commands before the error, newest (the one that failed) first.
    pub commands: Vec<ErrorCommand>,
}

impl ErrorEntry {
    /// "UNC at LBA 4660 during READ DMA EXT (power-on hour 12)".
    pub fn describe(&self) -> String {
        let what = if self.error_bits.is_empty() {
            format!("error register 0x{:02x}", self.error_register)
        } else {
            self.error_bits.join(" ")
        };
        let cmd = self
            .commands
            .first()
            .map(|c| {
                format!(
                    " during {} (0x{:02x})",
                    if c.command_name == "other" {
                        "command"
                    } else {
                        c.command_name
                    },
                    c.command
                )
            })
            .unwrap_or_default();
        format!(
            "{what} at LBA {}{cmd}, power-on hour {}",
            self.lba, self.lifetime_hours
        )
    }
}

/// An error log, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLog {
    /// `summary` (SMART READ LOG 0x01) or `extended` (READ LOG EXT 0x03).
    pub kind: &'static str,
    pub revision: u8,
    /// The drive's lifetime error count (0 when it never logged one).
    pub count: u32,
    /// The entries still held (the summary log keeps the last 5), newest first.
    pub entries: Vec<ErrorEntry>,
    pub checksum_ok: Option<bool>,
}

fn lba28(low: u8, mid: u8, high: u8, dev: u8) -> u64 {
    u64::from(low) | (u64::from(mid) << 8) | (u64::from(high) << 16) | (u64::from(dev & 0x0F) << 24)
}

/// Decode the SMART summary error log (log address 0x01, one page): byte 0 version, byte 1
/// the newest entry's index (1–5, 0 = none), five 90-byte entries from byte 2 (five
/// 12-byte command structures, oldest first, then a 30-byte error structure), the lifetime
/// error count in bytes 452–453, the checksum at 511.
pub fn parse_summary_error_log(b: &[u8]) -> Result<ErrorLog> {
    need(b, "SMART summary error log")?;
    let b = &b[..PAGE];
    let newest = b[1];
    if newest > 5 {
        bail!("SMART summary error log: newest-entry index {newest} is past the 5 entries");
    }
    let count = u32::from(u16le(b, 452));
    let mut entries = Vec::new();
    if newest > 0 {
        for i in 0..5usize {
            let slot = (usize::from(newest) - 1 + 5 - i) % 5;
            let e = &b[2 + slot * 90..2 + slot * 90 + 90];
            if e.iter().all(|&x| x == 0) {
                continue;
            }
            let commands = (0..5)
                .rev()
                .map(|k| &e[k * 12..k * 12 + 12])
                .filter(|c| c.iter().any(|&x| x != 0))
                .map(|c| ErrorCommand {
                    command: c[7],
                    command_name: command_name(c[7]),
                    features: u16::from(c[1]),
                    count: u16::from(c[2]),
                    lba: lba28(c[3], c[4], c[5], c[6]),
                    device: c[6],
                    timestamp_ms: u32le(c, 8),
                })
                .collect();
            let d = &e[60..90];
            entries.push(ErrorEntry {
                error_number: count.saturating_sub(i as u32),
                lifetime_hours: u16le(d, 28),
                state: d[27],
                state_text: state_text(d[27]),
                error_register: d[1],
                error_bits: error_register_names(d[1]),
                status_register: d[7],
                count: u16::from(d[2]),
                lba: lba28(d[3], d[4], d[5], d[6]),
                commands,
            });
        }
    }
    Ok(ErrorLog {
        kind: "summary",
        revision: b[0],
        count,
        entries,
        checksum_ok: Some(checksum_ok(b)),
    })
}

/// Decode the extended comprehensive error log (log address 0x03, READ LOG EXT), one or
/// more pages: byte 0 version, bytes 2–3 the newest entry's index (1-based over all pages,
/// 0 = none), four 124-byte entries per page from byte 4 (five 18-byte command structures,
/// oldest first, then a 34-byte error structure with 48-bit LBAs), the lifetime error
/// count in bytes 500–501 of the first page.
pub fn parse_ext_error_log(b: &[u8]) -> Result<ErrorLog> {
    need(b, "extended comprehensive error log")?;
    let pages = b.len() / PAGE;
    let slots = pages * 4;
    let newest = usize::from(u16le(b, 2));
    if newest > slots {
        bail!(
            "extended comprehensive error log: newest-entry index {newest} is past the {slots} \
             entries of {pages} page(s)"
        );
    }
    let count = u32::from(u16le(b, 500));
    // LBAs are stored in register order: LBA low, LBA low (exp), mid, mid (exp), high,
    // high (exp), i.e. bits 7:0, 31:24, 15:8, 39:32, 23:16, 47:40.
    let lba48 = |x: &[u8], lo: usize| -> u64 {
        [0usize, 24, 8, 32, 16, 40]
            .iter()
            .enumerate()
            .fold(0u64, |acc, (k, shift)| {
                acc | (u64::from(x[lo + k]) << shift)
            })
    };
    let mut entries = Vec::new();
    if newest > 0 {
        for i in 0..slots {
            let slot = (newest - 1 + slots - i) % slots;
            let at = (slot / 4) * PAGE + 4 + (slot % 4) * 124;
            let e = &b[at..at + 124];
            if e.iter().all(|&x| x == 0) {
                continue;
            }
            // Command structure (18 bytes): device control, features (2), count (2), LBA
            // (6), device, command, reserved, timestamp (4).
            let commands = (0..5)
                .rev()
                .map(|k| &e[k * 18..k * 18 + 18])
                .filter(|c| c.iter().any(|&x| x != 0))
                .map(|c| ErrorCommand {
                    command: c[12],
                    command_name: command_name(c[12]),
                    features: u16le(c, 1),
                    count: u16le(c, 3),
                    lba: lba48(c, 5),
                    device: c[11],
                    timestamp_ms: u32le(c, 14),
                })
                .collect();
            // Error structure (34 bytes): transport, error, count (2), LBA (6), device,
            // status, extended info (19), state, life timestamp (2).
            let d = &e[90..124];
            entries.push(ErrorEntry {
                error_number: count.saturating_sub(i as u32),
                lifetime_hours: u16le(d, 32),
                state: d[31],
                state_text: state_text(d[31]),
                error_register: d[1],
                error_bits: error_register_names(d[1]),
                status_register: d[11],
                count: u16le(d, 2),
                lba: lba48(d, 4),
                commands,
            });
        }
    }
    Ok(ErrorLog {
        kind: "extended",
        revision: b[0],
        count,
        entries,
        checksum_ok: Some(checksum_ok(b)),
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Byte fixtures built field by field from the ATA/ACS layouts.

    /// Set the checksum byte so the page sums to zero.
    pub fn seal(p: &mut [u8]) {
        let s = p[..511].iter().fold(0u8, |s, &x| s.wrapping_add(x));
        p[511] = 0u8.wrapping_sub(s);
    }

    /// A self-test log with `tests` (type, status, hours, LBA) oldest first.
    pub fn self_test_log(tests: &[(u8, u8, u16, u32)]) -> Vec<u8> {
        let mut p = vec![0u8; 512];
        p[0] = 1;
        for (i, (t, s, h, lba)) in tests.iter().enumerate() {
            let slot = i % 21;
            let e = &mut p[2 + slot * 24..2 + slot * 24 + 24];
            e[0] = *t;
            e[1] = *s;
            e[2..4].copy_from_slice(&h.to_le_bytes());
            e[4] = 0x42;
            e[5..9].copy_from_slice(&lba.to_le_bytes());
        }
        p[508] = if tests.is_empty() {
            0
        } else {
            ((tests.len() - 1) % 21 + 1) as u8
        };
        seal(&mut p);
        p
    }

    /// A summary error log with `errors` (error register, LBA, hours, failing command)
    /// oldest first, and a lifetime count.
    pub fn summary_error_log(errors: &[(u8, u32, u16, u8)], count: u16) -> Vec<u8> {
        let mut p = vec![0u8; 512];
        p[0] = 1;
        for (i, (err, lba, hours, cmd)) in errors.iter().enumerate() {
            let slot = i % 5;
            let e = &mut p[2 + slot * 90..2 + slot * 90 + 90];
            // Two commands: an IDENTIFY before, then the failing one in the last slot.
            let c = &mut e[36..48];
            c[7] = 0xEC;
            c[6] = 0xA0;
            c[8..12].copy_from_slice(&1000u32.to_le_bytes());
            let c = &mut e[48..60];
            c[2] = 8;
            c[3..6].copy_from_slice(&lba.to_le_bytes()[..3]);
            c[6] = 0xE0 | (lba >> 24) as u8;
            c[7] = *cmd;
            c[8..12].copy_from_slice(&2000u32.to_le_bytes());
            let d = &mut e[60..90];
            d[1] = *err;
            d[2] = 8;
            d[3..6].copy_from_slice(&lba.to_le_bytes()[..3]);
            d[6] = 0xE0 | (lba >> 24) as u8;
            d[7] = 0x51;
            d[27] = 3;
            d[28..30].copy_from_slice(&hours.to_le_bytes());
        }
        p[1] = if errors.is_empty() {
            0
        } else {
            ((errors.len() - 1) % 5 + 1) as u8
        };
        p[452..454].copy_from_slice(&count.to_le_bytes());
        seal(&mut p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    /// QEMU's IDE model after one `smartctl -t short`: revision 1, one entry, type 1, status
    /// 0, hours 0x1234 (hw/ide/core.c writes those four bytes).
    #[test]
    fn self_test_log_as_qemu_writes_it() {
        let mut p = vec![0u8; 512];
        p[0] = 1;
        p[2] = 1;
        p[3] = 0;
        p[4] = 0x34;
        p[5] = 0x12;
        p[508] = 1;
        seal(&mut p);
        let l = parse_self_test_log(&p).unwrap();
        assert_eq!(l.revision, 1);
        assert_eq!(l.checksum_ok, Some(true));
        assert_eq!(l.entries.len(), 1);
        let e = &l.entries[0];
        assert_eq!((e.test_type, e.test_type_text), (1, "Short offline"));
        assert_eq!((e.status, e.passed), (0, Some(true)));
        assert_eq!(e.result_text, "Completed without error");
        assert_eq!(e.lifetime_hours, 4660);
        assert_eq!(e.failing_lba, None);
        assert!(l.last_completed_failure().is_none());
    }

    #[test]
    fn self_test_log_empty_and_newest_first() {
        let l = parse_self_test_log(&self_test_log(&[])).unwrap();
        assert!(l.entries.is_empty());
        // Extended test failed with a read failure at LBA 0x123456 (90% left), then a
        // short test aborted by the host, newest last.
        let p = self_test_log(&[(2, 0x79, 100, 0x0123_4567), (1, 0x10, 101, 0)]);
        let l = parse_self_test_log(&p).unwrap();
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[0].test_type, 1);
        assert_eq!(l.entries[0].passed, None);
        assert_eq!(l.entries[0].result_text, "Aborted by host");
        let f = l.last_completed_failure().unwrap();
        assert_eq!(f.test_type_text, "Extended offline");
        assert_eq!(f.result, 7);
        assert_eq!(f.result_text, "Completed: read failure");
        assert_eq!(f.remaining_percent, 90);
        assert_eq!(f.failing_lba, Some(0x0123_4567));
        assert_eq!(f.lifetime_hours, 100);
        assert_eq!(l.earlier_failures(), 0);
        // A later pass supersedes the failure.
        let p = self_test_log(&[(2, 0x79, 100, 77), (2, 0x00, 130, 0)]);
        let l = parse_self_test_log(&p).unwrap();
        assert!(l.last_completed_failure().is_none());
        assert_eq!(l.earlier_failures(), 1);
    }

    #[test]
    fn self_test_log_ring_wraps() {
        // 23 tests in a ring of 21: the two oldest are overwritten; the newest is #23.
        let tests: Vec<(u8, u8, u16, u32)> = (0..23).map(|h| (1, 0, h as u16 + 1, 0)).collect();
        let l = parse_self_test_log(&self_test_log(&tests)).unwrap();
        assert_eq!(l.entries.len(), 21);
        assert_eq!(l.entries[0].lifetime_hours, 23);
        assert_eq!(l.entries[20].lifetime_hours, 3);
    }

    #[test]
    fn self_test_log_malformed() {
        assert!(parse_self_test_log(&[0u8; 100]).is_err());
        let mut p = self_test_log(&[(1, 0, 5, 0)]);
        p[508] = 22;
        assert!(parse_self_test_log(&p).is_err());
        let mut p = self_test_log(&[(1, 0, 5, 0)]);
        p[511] ^= 1;
        assert_eq!(parse_self_test_log(&p).unwrap().checksum_ok, Some(false));
    }

    #[test]
    fn summary_error_log_entries() {
        let l = parse_summary_error_log(&summary_error_log(&[], 0)).unwrap();
        assert_eq!((l.count, l.entries.len()), (0, 0));
        assert_eq!(l.checksum_ok, Some(true));
        // Seven errors over the drive's life; the log holds the last five, the newest an
        // uncorrectable read at LBA 0x0ABCDEF during READ DMA EXT at hour 812.
        let errs: Vec<(u8, u32, u16, u8)> = (0..7)
            .map(|i| (0x40, 0x0AB_CDE0 + i as u32, 800 + 2 * i as u16, 0x25))
            .collect();
        let l = parse_summary_error_log(&summary_error_log(&errs, 7)).unwrap();
        assert_eq!(l.revision, 1);
        assert_eq!(l.count, 7);
        assert_eq!(l.entries.len(), 5);
        let e = &l.entries[0];
        assert_eq!(e.error_number, 7);
        assert_eq!(e.lifetime_hours, 812);
        assert_eq!(e.error_bits, vec!["UNC"]);
        assert_eq!(e.lba, 0x0AB_CDE6);
        assert_eq!(e.status_register, 0x51);
        assert_eq!(e.state_text, "active or idle");
        assert_eq!(e.commands.len(), 2);
        assert_eq!(e.commands[0].command_name, "READ DMA EXT");
        assert_eq!(e.commands[0].lba, 0x0AB_CDE6);
        assert_eq!(e.commands[0].timestamp_ms, 2000);
        assert_eq!(e.commands[1].command, 0xEC);
        assert_eq!(
            e.describe(),
            "UNC at LBA 11259366 during READ DMA EXT (0x25), power-on hour 812"
        );
        assert_eq!(l.entries[4].error_number, 3);
        assert_eq!(l.entries[4].lifetime_hours, 804);
    }

    #[test]
    fn summary_error_log_malformed() {
        assert!(parse_summary_error_log(&[]).is_err());
        let mut p = summary_error_log(&[(0x04, 0, 1, 0xB0)], 1);
        p[1] = 6;
        assert!(parse_summary_error_log(&p).is_err());
        // An index pointing at an all-zero slot gives no entry, not garbage.
        let mut p = summary_error_log(&[], 3);
        p[1] = 2;
        let l = parse_summary_error_log(&p).unwrap();
        assert_eq!((l.count, l.entries.len()), (3, 0));
        assert_eq!(error_register_names(0x84), vec!["ICRC", "ABRT"]);
    }

    /// A 48-bit LBA as the extended error log stores it (register order).
    fn register_order(lba: u64) -> [u8; 6] {
        let b = lba.to_le_bytes();
        [b[0], b[3], b[1], b[4], b[2], b[5]]
    }

    #[test]
    fn extended_logs() {
        // Extended self-test log, two pages (38 descriptors): newest at index 20 (page 2,
        // slot 0), a short test that failed with a servo error at 48-bit LBA 0x1_2345_6789.
        let mut p = vec![0u8; 1024];
        p[0] = 1;
        p[2..4].copy_from_slice(&20u16.to_le_bytes());
        let d = &mut p[512 + 4..512 + 4 + 26];
        d[0] = 1;
        d[1] = 0x60;
        d[2..4].copy_from_slice(&9000u16.to_le_bytes());
        d[5..11].copy_from_slice(&0x1_2345_6789u64.to_le_bytes()[..6]);
        let d = &mut p[4 + 18 * 26..4 + 19 * 26];
        d[0] = 2;
        d[2] = 1;
        let l = parse_ext_self_test_log(&p).unwrap();
        assert_eq!(l.kind, "extended");
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[0].failing_lba, Some(0x1_2345_6789));
        assert_eq!(l.entries[0].result_text, "Completed: servo/seek failure");
        assert_eq!(l.entries[1].test_type, 2);
        assert_eq!(l.entries[1].passed, Some(true));
        p[2] = 39;
        assert!(parse_ext_self_test_log(&p).is_err());

        // Extended comprehensive error log: one entry, IDNF on WRITE FPDMA QUEUED at a
        // 48-bit LBA, count 1.
        let mut p = vec![0u8; 512];
        p[0] = 1;
        p[2] = 1;
        let e = &mut p[4..128];
        let c = &mut e[72..90];
        c[12] = 0x61;
        c[5..11].copy_from_slice(&register_order(0x2_0000_0001));
        c[14..18].copy_from_slice(&77u32.to_le_bytes());
        let d = &mut e[90..124];
        d[1] = 0x10;
        d[4..10].copy_from_slice(&register_order(0x2_0000_0001));
        d[11] = 0x51;
        d[31] = 3;
        d[32..34].copy_from_slice(&4321u16.to_le_bytes());
        p[500] = 1;
        seal(&mut p);
        let l = parse_ext_error_log(&p).unwrap();
        assert_eq!((l.kind, l.count, l.entries.len()), ("extended", 1, 1));
        let e = &l.entries[0];
        assert_eq!(e.lba, 0x2_0000_0001);
        assert_eq!(e.error_bits, vec!["IDNF"]);
        assert_eq!(e.lifetime_hours, 4321);
        assert_eq!(e.commands[0].command_name, "WRITE FPDMA QUEUED");
        assert_eq!(e.commands[0].timestamp_ms, 77);
        assert!(parse_ext_error_log(&p[..100]).is_err());
    }

    #[test]
    fn gp_directory() {
        let mut d = vec![0u8; 512];
        assert_eq!(gp_log_pages(&d, EXT_COMPREHENSIVE_ERROR_LOG), 0);
        d[0] = 1;
        d[2 * 0x03] = 4;
        d[2 * 0x07] = 1;
        d[2 * 0x80 + 1] = 1; // host-specific log 0x80: 256 pages
        assert_eq!(gp_log_pages(&d, EXT_COMPREHENSIVE_ERROR_LOG), 4);
        assert_eq!(gp_log_pages(&d, EXT_SELF_TEST_LOG), 1);
        assert_eq!(gp_log_pages(&d, 0x80), 256);
        assert_eq!(gp_log_pages(&d, GP_LOG_DIRECTORY), 0);
        assert_eq!(gp_log_pages(&d[..100], EXT_SELF_TEST_LOG), 0);
    }

    #[test]
    fn never_panics_on_random_pages() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for len in [0, 1, 511, 512, 513, 1024, 1500, 2048] {
            for _ in 0..300 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                let _ = parse_self_test_log(&b);
                let _ = parse_summary_error_log(&b);
                let _ = parse_ext_self_test_log(&b);
                let _ = parse_ext_error_log(&b);
            }
        }
    }
}
