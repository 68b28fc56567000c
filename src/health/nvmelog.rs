//! NVMe logs besides SMART/Health, pure decoders: the Error Information log (LID 0x01,
//! 64-byte entries, ELPE + 1 of them) summarised as the count of non-empty entries and the
//! newest one, and the Device Self-test log (LID 0x06, 564 bytes, 20 results) for drives
//! whose Identify OACS bit 4 says they run self-tests. Offsets: NVMe Base Specification 2.0
//! §5.16.1.2 and §5.16.1.7 (libnvme `struct nvme_error_log_page`, `struct
//! nvme_self_test_log`). Also the Get Log Page words lifeboat sends for them. No decoder
//! panics on any input.

use anyhow::{Result, bail};
use serde::Serialize;

/// Error Information log: LID 1, one 64-byte entry per error, newest by error count.
pub const ERROR_LOG_LID: u8 = 0x01;
pub const ERROR_ENTRY_LEN: usize = 64;
/// Device Self-test log: LID 6, 564 bytes.
pub const SELF_TEST_LOG_LID: u8 = 0x06;
pub const SELF_TEST_LOG_LEN: usize = 564;
/// Identify Controller OACS bit 4: Device Self-test supported.
pub const OACS_SELF_TEST: u16 = 1 << 4;

/// cdw10 of Get Log Page for `len` bytes (a multiple of 4, at most 256 KiB) of log `lid`:
/// LID in bits 7:0, NUMDL (dwords − 1, low 16 bits) in 31:16.
pub fn get_log_cdw10(lid: u8, len: usize) -> u32 {
    let numd = (len / 4).clamp(1, 0x1_0000) as u32 - 1;
    u32::from(lid) | ((numd & 0xFFFF) << 16)
}

/// How many error entries to read: ELPE + 1, at most 256 (16 KiB), as nvme-cli does.
pub fn error_log_len(entries: u16) -> usize {
    usize::from(entries.clamp(1, 256)) * ERROR_ENTRY_LEN
}

fn u16le(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64le(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// An NVMe status (SCT, SC) in words, for the ones a health report meets.
pub fn status_text(sct: u8, sc: u8) -> &'static str {
    match (sct, sc) {
        (0, 0x00) => "successful completion",
        (0, 0x01) => "invalid command opcode",
        (0, 0x02) => "invalid field in command",
        (0, 0x04) => "data transfer error",
        (0, 0x05) => "commands aborted due to power loss notification",
        (0, 0x06) => "internal error",
        (0, 0x07) => "command abort requested",
        (0, 0x0B) => "invalid namespace or format",
        (0, 0x80) => "LBA out of range",
        (0, 0x81) => "capacity exceeded",
        (0, 0x82) => "namespace not ready",
        (1, 0x09) => "invalid log page",
        (1, 0x0B) => "firmware activation requires conventional reset",
        (1, 0x1D) => "device self-test in progress",
        (2, 0x80) => "write fault",
        (2, 0x81) => "unrecovered read error",
        (2, 0x82) => "end-to-end guard check error",
        (2, 0x83) => "end-to-end application tag check error",
        (2, 0x84) => "end-to-end reference tag check error",
        (2, 0x85) => "compare failure",
        (2, 0x86) => "access denied",
        (2, 0x87) => "deallocated or unwritten logical block",
        (0, _) => "generic command status",
        (1, _) => "command specific status",
        (2, _) => "media and data integrity error",
        (3, _) => "path related status",
        _ => "vendor specific status",
    }
}

/// One Error Information log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorEntry {
    /// The error's unique, increasing number.
    pub error_count: u64,
    pub sqid: u16,
    pub cmdid: u16,
    /// The status field without the phase tag (as nvme-cli prints `status_field`).
    pub status_field: u16,
    pub phase_tag: bool,
    /// Status Code Type and Status Code, and what they mean.
    pub sct: u8,
    pub sc: u8,
    pub status_text: &'static str,
    pub parm_error_location: u16,
    pub lba: u64,
    pub nsid: u32,
    pub vendor_specific: u8,
    pub transport_type: u8,
    pub command_specific: u64,
    pub transport_specific: u16,
}

/// The Error Information log, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLog {
    /// Entries read (ELPE + 1 as the controller reports, capped at 256).
    pub entries_read: usize,
    /// Entries with a non-zero error count (holding an error).
    pub non_zero: usize,
    /// The newest entry (highest error count), if any.
    pub latest: Option<ErrorEntry>,
    /// Every non-empty entry, newest first.
    pub entries: Vec<ErrorEntry>,
}

fn error_entry(e: &[u8]) -> ErrorEntry {
    let st = u16le(e, 12);
    let status = st >> 1;
    let sc = (status & 0xFF) as u8;
    let sct = ((status >> 8) & 0x7) as u8;
    ErrorEntry {
        error_count: u64le(e, 0),
        sqid: u16le(e, 8),
        cmdid: u16le(e, 10),
        status_field: status,
        phase_tag: st & 1 != 0,
        sct,
        sc,
        status_text: status_text(sct, sc),
        parm_error_location: u16le(e, 14),
        lba: u64le(e, 16),
        nsid: u32le(e, 24),
        vendor_specific: e[28],
        transport_type: e[29],
        command_specific: u64le(e, 32),
        transport_specific: u16le(e, 40),
    }
}

/// Decode an Error Information log: whole 64-byte entries; an entry with error count 0 is
/// empty.
pub fn parse_error_log(b: &[u8]) -> Result<ErrorLog> {
    if b.len() < ERROR_ENTRY_LEN {
        bail!(
            "NVMe error information log: {} bytes, expected at least one {ERROR_ENTRY_LEN}-byte entry",
            b.len()
        );
    }
    let mut entries: Vec<ErrorEntry> = b
        .chunks_exact(ERROR_ENTRY_LEN)
        .map(error_entry)
        .filter(|e| e.error_count != 0)
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.error_count));
    Ok(ErrorLog {
        entries_read: b.len() / ERROR_ENTRY_LEN,
        non_zero: entries.len(),
        latest: entries.first().cloned(),
        entries,
    })
}

impl ErrorEntry {
    /// "unrecovered read error (SCT 2h, SC 81h) on queue 1, command 0x0012, LBA 4660".
    pub fn describe(&self) -> String {
        let lba = if self.lba != 0 && self.lba != u64::MAX {
            format!(", LBA {}", self.lba)
        } else {
            String::new()
        };
        format!(
            "{} (SCT {:x}h, SC {:02x}h) on queue {}, command 0x{:04x}{lba}",
            self.status_text, self.sct, self.sc, self.sqid, self.cmdid
        )
    }
}

/// Self-test result (low nibble of the status byte) in words.
pub fn self_test_result_text(r: u8) -> &'static str {
    match r {
        0x0 => "completed without error",
        0x1 => "aborted by a Device Self-test command",
        0x2 => "aborted by a controller reset",
        0x3 => "aborted: namespace removed",
        0x4 => "aborted by a Format NVM command",
        0x5 => "fatal or unknown test error",
        0x6 => "completed with an unknown segment failure",
        0x7 => "completed with one or more failed segments",
        0x8 => "aborted for an unknown reason",
        0x9 => "aborted by a sanitize operation",
        0xF => "entry not used",
        _ => "reserved",
    }
}

/// One Device Self-test result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfTestResult {
    /// 1 short, 2 extended, 0xE vendor specific.
    pub code: u8,
    pub code_text: &'static str,
    pub result: u8,
    pub result_text: &'static str,
    /// `true` passed, `false` failed, `null` aborted.
    pub passed: Option<bool>,
    /// The segment that failed (valid when the test failed).
    pub segment: u8,
    pub power_on_hours: u64,
    pub nsid: Option<u32>,
    pub failing_lba: Option<u64>,
    pub sct: Option<u8>,
    pub sc: Option<u8>,
}

/// The Device Self-test log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfTestLog {
    /// The test running now: 0 none, 1 short, 2 extended.
    pub current_operation: u8,
    /// Its completion, percent.
    pub current_completion: u8,
    /// Used result entries, newest first.
    pub results: Vec<SelfTestResult>,
}

/// Decode the Device Self-test log (564 bytes): byte 0 current operation, byte 1 its
/// completion, 20 results of 28 bytes from byte 4, newest first; result 0xF = unused.
pub fn parse_self_test_log(b: &[u8]) -> Result<SelfTestLog> {
    if b.len() < SELF_TEST_LOG_LEN {
        bail!(
            "NVMe device self-test log: {} bytes, expected {SELF_TEST_LOG_LEN}",
            b.len()
        );
    }
    let mut results = Vec::new();
    for i in 0..20 {
        let e = &b[4 + i * 28..4 + i * 28 + 28];
        let result = e[0] & 0x0F;
        if result == 0xF {
            continue;
        }
        let code = e[0] >> 4;
        let valid = e[2];
        let passed = match result {
            0 => Some(true),
            5..=7 => Some(false),
            _ => None,
        };
        results.push(SelfTestResult {
            code,
            code_text: match code {
                1 => "short",
                2 => "extended",
                0xE => "vendor specific",
                _ => "reserved",
            },
            result,
            result_text: self_test_result_text(result),
            passed,
            segment: e[1],
            power_on_hours: u64le(e, 4),
            nsid: (valid & 1 != 0).then(|| u32le(e, 12)),
            failing_lba: (valid & 2 != 0).then(|| u64le(e, 16)),
            sct: (valid & 4 != 0).then_some(e[24] & 0x7),
            sc: (valid & 8 != 0).then_some(e[25]),
        });
    }
    Ok(SelfTestLog {
        current_operation: b[0] & 0x0F,
        current_completion: b[1] & 0x7F,
        results,
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    /// An error log of `n` entries with the given (error count, sqid, cmdid, SCT, SC, LBA),
    /// in slot order; the phase tag set as controllers do.
    pub fn error_log(n: usize, errors: &[(u64, u16, u16, u8, u8, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; n * 64];
        for (i, (cnt, sq, cid, sct, sc, lba)) in errors.iter().enumerate() {
            let e = &mut b[i * 64..i * 64 + 64];
            e[0..8].copy_from_slice(&cnt.to_le_bytes());
            e[8..10].copy_from_slice(&sq.to_le_bytes());
            e[10..12].copy_from_slice(&cid.to_le_bytes());
            let st: u16 = ((u16::from(*sct) << 8 | u16::from(*sc)) << 1) | 1;
            e[12..14].copy_from_slice(&st.to_le_bytes());
            e[14..16].copy_from_slice(&0xFFFFu16.to_le_bytes());
            e[16..24].copy_from_slice(&lba.to_le_bytes());
            e[24..28].copy_from_slice(&1u32.to_le_bytes());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_log_words() {
        assert_eq!(get_log_cdw10(0x02, 512), 0x007F_0002);
        assert_eq!(get_log_cdw10(0x01, 64), 0x000F_0001);
        assert_eq!(get_log_cdw10(0x01, error_log_len(256)), 0x0FFF_0001);
        assert_eq!(get_log_cdw10(0x06, SELF_TEST_LOG_LEN), 0x008C_0006);
        assert_eq!(error_log_len(0), 64);
        assert_eq!(error_log_len(1000), 16384);
    }

    /// QEMU's controller answers the error log with zeros (no errors recorded).
    #[test]
    fn empty_error_log() {
        let l = parse_error_log(&[0u8; 256]).unwrap();
        assert_eq!((l.entries_read, l.non_zero), (4, 0));
        assert!(l.latest.is_none());
    }

    #[test]
    fn error_log_newest_by_count() {
        let b = fixtures::error_log(
            4,
            &[
                (7, 1, 0x0012, 2, 0x81, 4660),
                (9, 0, 0x1003, 0, 0x02, u64::MAX),
                (8, 2, 0x0040, 2, 0x80, 99),
            ],
        );
        let l = parse_error_log(&b).unwrap();
        assert_eq!((l.entries_read, l.non_zero), (4, 3));
        let latest = l.latest.as_ref().unwrap();
        assert_eq!(latest.error_count, 9);
        assert_eq!(latest.status_field, 0x0002);
        assert!(latest.phase_tag);
        assert_eq!(latest.status_text, "invalid field in command");
        assert_eq!(
            latest.describe(),
            "invalid field in command (SCT 0h, SC 02h) on queue 0, command 0x1003"
        );
        assert_eq!(l.entries[2].error_count, 7);
        assert_eq!(
            l.entries[2].describe(),
            "unrecovered read error (SCT 2h, SC 81h) on queue 1, command 0x0012, LBA 4660"
        );
        assert_eq!(l.entries[2].status_field, 0x0281);
        assert_eq!(l.entries[2].parm_error_location, 0xFFFF);
        assert_eq!(l.entries[2].nsid, 1);
    }

    #[test]
    fn error_log_malformed() {
        assert!(parse_error_log(&[0u8; 63]).is_err());
        // A trailing partial entry is ignored, not read past.
        let mut b = fixtures::error_log(1, &[(1, 0, 0, 0, 6, 0)]);
        b.extend_from_slice(&[0xFF; 10]);
        assert_eq!(parse_error_log(&b).unwrap().non_zero, 1);
    }

    #[test]
    fn self_test_log_results() {
        let mut b = vec![0u8; SELF_TEST_LOG_LEN];
        b[0] = 2; // an extended test running
        b[1] = 40;
        for i in 0..20 {
            b[4 + i * 28] = 0x0F;
        }
        // Newest: extended test, segment 3 failed at LBA 123456 with an unrecovered read.
        let e = &mut b[4..32];
        e[0] = 0x27;
        e[1] = 3;
        e[2] = 0x0F;
        e[4..12].copy_from_slice(&1500u64.to_le_bytes());
        e[12..16].copy_from_slice(&1u32.to_le_bytes());
        e[16..24].copy_from_slice(&123_456u64.to_le_bytes());
        e[24] = 2;
        e[25] = 0x81;
        // Older: a short test that passed.
        let e = &mut b[32..60];
        e[0] = 0x10;
        e[4..12].copy_from_slice(&1400u64.to_le_bytes());
        let l = parse_self_test_log(&b).unwrap();
        assert_eq!((l.current_operation, l.current_completion), (2, 40));
        assert_eq!(l.results.len(), 2);
        let r = &l.results[0];
        assert_eq!((r.code_text, r.passed), ("extended", Some(false)));
        assert_eq!(r.result_text, "completed with one or more failed segments");
        assert_eq!(
            (r.segment, r.failing_lba, r.sct, r.sc),
            (3, Some(123_456), Some(2), Some(0x81))
        );
        assert_eq!(r.power_on_hours, 1500);
        assert_eq!(l.results[1].passed, Some(true));
        assert_eq!(l.results[1].failing_lba, None);
        assert!(parse_self_test_log(&b[..563]).is_err());
    }
}
