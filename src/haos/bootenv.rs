//! Boot-slot state kept by the bootloaders HAOS uses, as pure parsers: the U-Boot binary
//! environment at byte 0 of `hassos-bootstate` and GRUB's `EFI/BOOT/grubenv` on the boot
//! FAT (layout notes §6b). Also owns [`Slot`] (A/B) and [`SlotChoice`], the "which slot
//! boots next, and why" answer shared with [`super::rauc`] and [`super::rpiboot`], and the
//! builders [`build_uboot_env`] / [`build_grubenv`] used by tests and fixture images.
//!
//! The slot rules mirror the HAOS boot scripts:
//! - U-Boot (`uboot-boot*.ush`): missing `BOOT_ORDER` → `"A B"`, missing `BOOT_x_LEFT` → 3; an
//!   env that fails its CRC is ignored by `env import -c`, so defaults apply. The first slot in
//!   `BOOT_ORDER` with tries left boots; when none has any, both counters are refilled to 3
//!   (slots RAUC dropped from `BOOT_ORDER` are appended again) and the first slot boots.
//! - GRUB (`board/pc/grub.cfg`): defaults `ORDER="A B"`, `x_OK=0`, `x_TRY=0`, then
//!   `load_env`; the first slot in `ORDER` with `OK=1` and `TRY<3` boots. When none
//!   qualifies GRUB picks the rescue-shell entry of B if `B_OK=1`, else of A if `A_OK=1`,
//!   else its first entry (slot A).

use std::collections::BTreeMap;
use std::fmt;

/// One of the two HAOS A/B slots (RAUC slot index 0 = A, 1 = B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// RAUC slot index: `rootfs.0` is A, `rootfs.1` is B.
    pub fn index(self) -> u32 {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    /// The slot with RAUC index `i` (0 or 1).
    pub fn from_index(i: u32) -> Option<Slot> {
        match i {
            0 => Some(Slot::A),
            1 => Some(Slot::B),
            _ => None,
        }
    }

    /// Parse a boot name as the boot scripts write it: exactly `A` or `B`.
    pub fn from_bootname(s: &str) -> Option<Slot> {
        match s {
            "A" => Some(Slot::A),
            "B" => Some(Slot::B),
            _ => None,
        }
    }

    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::A => "A",
            Slot::B => "B",
        })
    }
}

/// Which slot a bootloader will start next, with a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotChoice {
    pub slot: Slot,
    /// Human explanation, e.g. `BOOT_ORDER "A B": A has 2 tries left`.
    pub reason: String,
    /// True when the choice is a fallback (counters refilled, rescue entry, defaults after a
    /// bad env) rather than a regular healthy selection.
    pub fallback: bool,
}

/// Errors of the boot-environment parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootEnvError {
    #[error(
        "U-Boot environment CRC mismatch: stored 0x{stored:08x}, computed {computed} for all sizes"
    )]
    UbootCrc {
        stored: u32,
        /// e.g. `0x1234abcd (0x2000), 0x… (0x4000)`.
        computed: String,
    },
    #[error("U-Boot environment block is {len} bytes, shorter than the smallest known size 0x2000")]
    UbootTooShort { len: usize },
    #[error("not a GRUB environment block: {0}")]
    NotGrubenv(String),
}

/// Known U-Boot environment sizes (BOOT_ENV_SIZE per board family, layout notes §2.1).
pub const UBOOT_ENV_SIZES: [usize; 3] = [0x2000, 0x4000, 0x8000];

/// A parsed U-Boot environment (or a blank bootstate partition).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct UbootEnv {
    /// Every `key=value` pair, in key order (duplicates: the last one wins, as in U-Boot).
    pub vars: BTreeMap<String, String>,
    /// `BOOT_ORDER` as stored (e.g. `"A B"`), `None` when absent.
    pub boot_order: Option<String>,
    /// `BOOT_A_LEFT` parsed as a number; `None` when absent or not a number (see `vars`).
    pub a_left: Option<u32>,
    /// `BOOT_B_LEFT` parsed as a number; `None` when absent or not a number.
    pub b_left: Option<u32>,
    /// `MACHINE_ID` when present and non-empty.
    pub machine_id: Option<String>,
    /// The size whose CRC matched: 0x2000 (Amlogic ODROID/VIM3), 0x4000 (RPi/Yellow),
    /// 0x8000 (Green, ODROID-M1/M1S). `None` for a blank block.
    pub env_size: Option<usize>,
}

impl UbootEnv {
    /// True when the block was all zeros or all 0xFF (never written: U-Boot uses defaults).
    pub fn is_blank(&self) -> bool {
        self.env_size.is_none()
    }

    /// Board families whose BOOT_ENV_SIZE equals the matched size (a hint, not proof).
    pub fn board_family_hint(&self) -> Option<&'static str> {
        match self.env_size? {
            0x2000 => Some("Amlogic (ODROID-C2/C4/N2, Khadas VIM3)"),
            0x4000 => Some("Raspberry Pi 3/4, Yellow"),
            0x8000 => Some("Rockchip (Green, ODROID-M1/M1S)"),
            _ => None,
        }
    }

    /// The slot the HAOS U-Boot script boots next from this environment.
    pub fn active_slot(&self) -> SlotChoice {
        uboot_choice(
            self.vars.get("BOOT_ORDER").map(String::as_str),
            self.vars.get("BOOT_A_LEFT").map(String::as_str),
            self.vars.get("BOOT_B_LEFT").map(String::as_str),
            self.is_blank(),
        )
    }
}

/// What U-Boot boots when its environment could not be imported (bad CRC): the defaults.
pub fn uboot_default_choice() -> SlotChoice {
    let mut c = uboot_choice(None, None, None, true);
    c.reason =
        "U-Boot environment unusable, defaults apply: BOOT_ORDER \"A B\", A has 3 tries left"
            .to_string();
    c.fallback = true;
    c
}

/// `test ${X} -gt 0` in U-Boot: `simple_strtol(.., 10)`, so garbage reads as 0; unset →
/// the script's default 3.
fn uboot_tries(v: Option<&str>) -> u32 {
    match v.map(str::trim) {
        None | Some("") => 3,
        Some(s) => {
            let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits
                .parse()
                .unwrap_or(if digits.is_empty() { 0 } else { u32::MAX })
        }
    }
}

fn uboot_choice(
    order: Option<&str>,
    a_left: Option<&str>,
    b_left: Option<&str>,
    blank: bool,
) -> SlotChoice {
    let order_s = match order.map(str::trim) {
        None | Some("") => "A B".to_string(),
        Some(s) => s.to_string(),
    };
    let mut slots: Vec<Slot> = order_s
        .split_whitespace()
        .filter_map(Slot::from_bootname)
        .collect();
    let left = |s: Slot| match s {
        Slot::A => uboot_tries(a_left),
        Slot::B => uboot_tries(b_left),
    };
    let blank_note = if blank {
        " (blank environment, defaults)"
    } else {
        ""
    };
    if let Some(&s) = slots.iter().find(|&&s| left(s) > 0) {
        return SlotChoice {
            slot: s,
            reason: format!(
                "BOOT_ORDER \"{order_s}\": {s} is the first slot with tries left ({}){blank_note}",
                left(s)
            ),
            fallback: false,
        };
    }
    // No tries left anywhere: refill both, re-append slots missing from the order.
    for s in [Slot::A, Slot::B] {
        if !slots.contains(&s) {
            slots.push(s);
        }
    }
    let s = slots.first().copied().unwrap_or(Slot::A);
    SlotChoice {
        slot: s,
        reason: format!(
            "BOOT_ORDER \"{order_s}\": no slot has tries left; U-Boot refills both counters to 3 \
             and boots {s}"
        ),
        fallback: true,
    }
}

fn is_blank_block(block: &[u8]) -> bool {
    block.iter().all(|&b| b == 0) || block.iter().all(|&b| b == 0xFF)
}

/// Parse a U-Boot environment block (read from byte 0 of `hassos-bootstate`; pass at least
/// 0x8000 bytes when available so every known size can be tried).
///
/// Layout: 4-byte little-endian CRC32 (zlib) over the rest of the block, then NUL-terminated
/// `key=value` strings ended by an empty string. Sizes 0x2000, 0x4000 and 0x8000 are tried
/// in turn; the first whose CRC matches wins. A block that is all zeros or all 0xFF parses
/// as a blank environment ([`UbootEnv::is_blank`]).
pub fn parse_uboot_env(block: &[u8]) -> Result<UbootEnv, BootEnvError> {
    let smallest = UBOOT_ENV_SIZES[0];
    let probe_len = block.len().min(UBOOT_ENV_SIZES[2]);
    if block.get(..probe_len).is_some_and(is_blank_block) && !block.is_empty() {
        return Ok(UbootEnv::default());
    }
    if block.len() < smallest {
        return Err(BootEnvError::UbootTooShort { len: block.len() });
    }
    let stored = match block.get(..4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => return Err(BootEnvError::UbootTooShort { len: block.len() }),
    };
    let mut computed = Vec::new();
    for size in UBOOT_ENV_SIZES {
        let Some(data) = block.get(4..size) else {
            break;
        };
        let crc = crc32fast::hash(data);
        if crc == stored {
            return Ok(env_from_data(data, size));
        }
        computed.push(format!("0x{crc:08x} (0x{size:x})"));
    }
    Err(BootEnvError::UbootCrc {
        stored,
        computed: computed.join(", "),
    })
}

fn env_from_data(data: &[u8], size: usize) -> UbootEnv {
    let mut vars = BTreeMap::new();
    for entry in data.split(|&b| b == 0) {
        if entry.is_empty() {
            break; // the empty string ends the list
        }
        let s = String::from_utf8_lossy(entry);
        if let Some((k, v)) = s.split_once('=') {
            vars.insert(k.to_string(), v.to_string());
        }
    }
    let num = |k: &str| {
        vars.get(k)
            .and_then(|v: &String| v.trim().parse::<u32>().ok())
    };
    UbootEnv {
        boot_order: vars.get("BOOT_ORDER").cloned(),
        a_left: num("BOOT_A_LEFT"),
        b_left: num("BOOT_B_LEFT"),
        machine_id: vars.get("MACHINE_ID").filter(|v| !v.is_empty()).cloned(),
        env_size: Some(size),
        vars,
    }
}

/// Build a U-Boot environment block of `size` bytes (CRC, `key=value\0`…, `\0`, zero
/// padding), as `env export -c -s <size>` writes it. Round-trips through
/// [`parse_uboot_env`] when `size` is one of [`UBOOT_ENV_SIZES`].
///
/// # Panics
/// When `size < 5`, when the variables do not fit, or when a key contains `=` or a key or
/// value contains NUL (this is a fixture builder: bad input is a bug in the caller).
pub fn build_uboot_env(vars: &BTreeMap<String, String>, size: usize) -> Vec<u8> {
    assert!(size >= 5, "U-Boot env size {size} too small");
    let mut data = Vec::with_capacity(size);
    for (k, v) in vars {
        assert!(
            !k.contains(['=', '\0']) && !v.contains('\0'),
            "invalid U-Boot env variable {k:?}"
        );
        data.extend_from_slice(k.as_bytes());
        data.push(b'=');
        data.extend_from_slice(v.as_bytes());
        data.push(0);
    }
    data.push(0);
    assert!(
        data.len() <= size - 4,
        "U-Boot env variables need {} bytes, more than {} available",
        data.len(),
        size - 4
    );
    data.resize(size - 4, 0);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&crc32fast::hash(&data).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// The header every GRUB environment block starts with.
pub const GRUBENV_HEADER: &str = "# GRUB Environment Block\n";
/// The usual size of a GRUB environment block.
pub const GRUBENV_SIZE: usize = 1024;

/// A parsed GRUB environment block (`EFI/BOOT/grubenv`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct GrubEnv {
    /// Every variable, in key order (escapes `\\` and `\<newline>` resolved).
    pub vars: BTreeMap<String, String>,
    pub order: Option<String>,
    pub a_ok: Option<String>,
    pub b_ok: Option<String>,
    pub a_try: Option<String>,
    pub b_try: Option<String>,
    pub machine_id: Option<String>,
    /// Length of the block; GRUB itself writes exactly 1024.
    pub block_len: usize,
    /// Non-comment lines that were not `key=value` (GRUB skips them too).
    pub malformed_lines: Vec<String>,
}

impl GrubEnv {
    /// The slot HAOS's grub.cfg boots next from this environment.
    pub fn active_slot(&self) -> SlotChoice {
        let get = |k: &str| self.vars.get(k).map(String::as_str);
        grub_choice(
            get("ORDER"),
            get("A_OK"),
            get("B_OK"),
            get("A_TRY"),
            get("B_TRY"),
        )
    }
}

/// GRUB's `[ "$X" -eq 1 ]`: grub_strtol of the whole string; a non-number is an error, so
/// the test is false.
fn grub_num(v: Option<&str>, default: i64) -> Option<i64> {
    match v {
        None => Some(default),
        Some(s) => s.trim().parse::<i64>().ok(),
    }
}

fn grub_choice(
    order: Option<&str>,
    a_ok: Option<&str>,
    b_ok: Option<&str>,
    a_try: Option<&str>,
    b_try: Option<&str>,
) -> SlotChoice {
    let order_s = order.unwrap_or("A B").to_string();
    let ok = |s: Slot| match s {
        Slot::A => grub_num(a_ok, 0),
        Slot::B => grub_num(b_ok, 0),
    };
    let tries = |s: Slot| match s {
        Slot::A => grub_num(a_try, 0),
        Slot::B => grub_num(b_try, 0),
    };
    for s in order_s.split_whitespace().filter_map(Slot::from_bootname) {
        if ok(s) == Some(1) && tries(s).is_some_and(|t| t < 3) {
            return SlotChoice {
                slot: s,
                reason: format!(
                    "ORDER \"{order_s}\": {s} is the first slot with {s}_OK=1 and {s}_TRY={} < 3",
                    tries(s).unwrap_or(0)
                ),
                fallback: false,
            };
        }
    }
    let (slot, why) = if ok(Slot::B) == Some(1) {
        (Slot::B, "GRUB falls back to the slot B rescue-shell entry")
    } else if ok(Slot::A) == Some(1) {
        (Slot::A, "GRUB falls back to the slot A rescue-shell entry")
    } else {
        (
            Slot::A,
            "no slot is marked OK; GRUB's default entry does not exist, so it boots its first \
             entry (slot A)",
        )
    };
    SlotChoice {
        slot,
        reason: format!("ORDER \"{order_s}\": no slot has OK=1 and TRY<3; {why}"),
        fallback: true,
    }
}

/// Parse a GRUB environment block: the header line, then `key=value` lines; lines starting
/// with `#` (and the `#` padding to the end of the block) are skipped. A trailing NUL-filled
/// tail (a torn write on FAT) is tolerated but reported as a malformed line.
pub fn parse_grubenv(bytes: &[u8]) -> Result<GrubEnv, BootEnvError> {
    let header = GRUBENV_HEADER.as_bytes();
    let Some(body) = bytes.strip_prefix(header) else {
        let shown = String::from_utf8_lossy(bytes.get(..header.len()).unwrap_or(bytes));
        return Err(BootEnvError::NotGrubenv(format!(
            "missing header {:?}, found {shown:?}",
            GRUBENV_HEADER.trim_end()
        )));
    };
    let text = String::from_utf8_lossy(body);
    let mut env = GrubEnv {
        block_len: bytes.len(),
        ..GrubEnv::default()
    };
    // Split into logical lines: a backslash escapes the next character, so "\\\n" does not
    // end a line.
    let mut lines: Vec<String> = Vec::new();
    let mut chars = text.chars();
    let mut raw_cur = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw_cur.push(c);
                if let Some(n) = chars.next() {
                    raw_cur.push(n);
                }
            }
            '\n' => lines.push(std::mem::take(&mut raw_cur)),
            _ => raw_cur.push(c),
        }
    }
    if !raw_cur.is_empty() {
        lines.push(raw_cur);
    }
    for raw in lines {
        if raw.starts_with('#') || raw.is_empty() {
            continue;
        }
        if raw.chars().all(|c| c == '\0') {
            env.malformed_lines
                .push(format!("{} NUL bytes (torn write?)", raw.len()));
            continue;
        }
        let Some((k, v)) = raw.split_once('=') else {
            env.malformed_lines.push(raw);
            continue;
        };
        env.vars.insert(k.to_string(), unescape_grub(v));
    }
    let get = |k: &str| env.vars.get(k).cloned();
    env.order = get("ORDER");
    env.a_ok = get("A_OK");
    env.b_ok = get("B_OK");
    env.a_try = get("A_TRY");
    env.b_try = get("B_TRY");
    env.machine_id = get("MACHINE_ID").filter(|v| !v.is_empty());
    Ok(env)
}

fn unescape_grub(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Build a GRUB environment block of [`GRUBENV_SIZE`] bytes (header, `key=value` lines with
/// `\`-escaped `\\` and newlines, `#` padding), as `grub-editenv` writes it.
///
/// # Panics
/// When the variables do not fit in 1024 bytes or a key contains `=` or a newline.
pub fn build_grubenv(vars: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = GRUBENV_HEADER.as_bytes().to_vec();
    for (k, v) in vars {
        assert!(!k.contains(['=', '\n']), "invalid GRUB env key {k:?}");
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        for c in v.chars() {
            if c == '\\' || c == '\n' {
                out.push(b'\\');
            }
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.push(b'\n');
    }
    assert!(
        out.len() <= GRUBENV_SIZE,
        "GRUB env variables need {} bytes, more than {GRUBENV_SIZE}",
        out.len()
    );
    out.resize(GRUBENV_SIZE, b'#');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn uboot_round_trip_all_sizes() {
        let vars = map(&[
            ("BOOT_ORDER", "B A"),
            ("BOOT_A_LEFT", "3"),
            ("BOOT_B_LEFT", "2"),
            ("MACHINE_ID", "0123456789abcdef0123456789abcdef"),
        ]);
        for size in UBOOT_ENV_SIZES {
            let mut block = build_uboot_env(&vars, size);
            assert_eq!(block.len(), size);
            // Bytes after the env (rest of the 8 MiB partition) must not matter.
            block.extend_from_slice(&[0xAB; 0x9000]);
            let env = parse_uboot_env(&block).unwrap();
            assert_eq!(env.vars, vars);
            assert_eq!(env.env_size, Some(size));
            assert_eq!(env.boot_order.as_deref(), Some("B A"));
            assert_eq!(env.a_left, Some(3));
            assert_eq!(env.b_left, Some(2));
            assert_eq!(
                env.machine_id.as_deref(),
                Some("0123456789abcdef0123456789abcdef")
            );
            assert!(!env.is_blank());
            assert!(env.board_family_hint().is_some());
            let c = env.active_slot();
            assert_eq!(c.slot, Slot::B);
            assert!(!c.fallback);
        }
    }

    #[test]
    fn uboot_handwritten_block() {
        // Built byte by byte, independent of build_uboot_env.
        let mut data = b"BOOT_A_LEFT=0\0BOOT_B_LEFT=3\0BOOT_ORDER=A B\0\0".to_vec();
        data.resize(0x4000 - 4, 0);
        let mut block = crc32fast::hash(&data).to_le_bytes().to_vec();
        block.extend_from_slice(&data);
        let env = parse_uboot_env(&block).unwrap();
        assert_eq!(env.env_size, Some(0x4000));
        assert_eq!(env.a_left, Some(0));
        assert_eq!(env.machine_id, None);
        let c = env.active_slot();
        assert_eq!(c.slot, Slot::B, "{}", c.reason);
    }

    #[test]
    fn uboot_crc_mismatch_names_values() {
        let vars = map(&[("BOOT_ORDER", "A B")]);
        let mut block = build_uboot_env(&vars, 0x8000);
        block[10] ^= 0x55;
        let err = parse_uboot_env(&block).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("U-Boot environment CRC mismatch: stored 0x"),
            "{msg}"
        );
        assert!(
            msg.contains("(0x2000)") && msg.contains("(0x8000)"),
            "{msg}"
        );
        assert!(msg.ends_with("for all sizes"), "{msg}");
    }

    #[test]
    fn uboot_blank_and_short() {
        for fill in [0u8, 0xFF] {
            let env = parse_uboot_env(&vec![fill; 0x8000]).unwrap();
            assert!(env.is_blank());
            let c = env.active_slot();
            assert_eq!(c.slot, Slot::A);
            assert!(c.reason.contains("blank"));
        }
        assert_eq!(
            parse_uboot_env(&[1, 2, 3]),
            Err(BootEnvError::UbootTooShort { len: 3 })
        );
        assert!(parse_uboot_env(&[]).is_err());
        // Shorter than 0x4000: only 0x2000 can be tried, and it must still work.
        let block = build_uboot_env(&map(&[("BOOT_ORDER", "A B")]), 0x2000);
        assert_eq!(parse_uboot_env(&block).unwrap().env_size, Some(0x2000));
    }

    #[test]
    fn uboot_slot_rules() {
        let choose = |kv: &[(&str, &str)]| {
            let env = parse_uboot_env(&build_uboot_env(&map(kv), 0x4000)).unwrap();
            env.active_slot()
        };
        assert_eq!(choose(&[]).slot, Slot::A);
        assert_eq!(choose(&[("BOOT_ORDER", "B A")]).slot, Slot::B);
        let c = choose(&[("BOOT_ORDER", "A B"), ("BOOT_A_LEFT", "0")]);
        assert_eq!(c.slot, Slot::B);
        // Garbage counter reads as 0 in U-Boot's `test -gt`.
        assert_eq!(
            choose(&[("BOOT_ORDER", "A B"), ("BOOT_A_LEFT", "x")]).slot,
            Slot::B
        );
        let c = choose(&[
            ("BOOT_ORDER", "B A"),
            ("BOOT_A_LEFT", "0"),
            ("BOOT_B_LEFT", "0"),
        ]);
        assert_eq!(c.slot, Slot::B);
        assert!(c.fallback && c.reason.contains("refills"), "{}", c.reason);
        // RAUC removed A from the order after marking it bad; B has no tries either.
        let c = choose(&[("BOOT_ORDER", "B"), ("BOOT_B_LEFT", "0")]);
        assert_eq!(c.slot, Slot::B);
        assert!(c.fallback);
        assert_eq!(uboot_default_choice().slot, Slot::A);
        assert!(uboot_default_choice().fallback);
    }

    #[test]
    fn grubenv_round_trip_and_rules() {
        let vars = map(&[
            ("ORDER", "B A"),
            ("A_OK", "1"),
            ("B_OK", "1"),
            ("A_TRY", "0"),
            ("B_TRY", "1"),
            ("MACHINE_ID", "abc"),
            ("ODD", "line\\one\ntwo"),
        ]);
        let block = build_grubenv(&vars);
        assert_eq!(block.len(), 1024);
        assert!(block.ends_with(b"###"));
        let env = parse_grubenv(&block).unwrap();
        assert_eq!(env.vars, vars);
        assert_eq!(env.order.as_deref(), Some("B A"));
        assert_eq!(env.machine_id.as_deref(), Some("abc"));
        assert_eq!(env.block_len, 1024);
        assert!(env.malformed_lines.is_empty());
        let c = env.active_slot();
        assert_eq!(c.slot, Slot::B);
        assert!(!c.fallback);
    }

    #[test]
    fn grubenv_handwritten_and_fallbacks() {
        let mut b =
            b"# GRUB Environment Block\nORDER=A B\nA_OK=1\nB_OK=0\nA_TRY=3\nB_TRY=0\nMACHINE_ID=\n"
                .to_vec();
        b.resize(1024, b'#');
        let env = parse_grubenv(&b).unwrap();
        assert_eq!(env.machine_id, None);
        let c = env.active_slot();
        assert_eq!(c.slot, Slot::A);
        assert!(c.fallback && c.reason.contains("rescue"), "{}", c.reason);

        // The image as shipped.
        let env = parse_grubenv(&build_grubenv(&map(&[
            ("ORDER", "A B"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
        ])))
        .unwrap();
        assert_eq!(env.active_slot().slot, Slot::A);

        // Nothing OK at all.
        let env = parse_grubenv(GRUBENV_HEADER.as_bytes()).unwrap();
        let c = env.active_slot();
        assert_eq!(c.slot, Slot::A);
        assert!(c.fallback);

        // B tried 3 times, A not OK → rescue B.
        let env = parse_grubenv(&build_grubenv(&map(&[
            ("ORDER", "B A"),
            ("B_OK", "1"),
            ("B_TRY", "3"),
        ])))
        .unwrap();
        let c = env.active_slot();
        assert_eq!(c.slot, Slot::B);
        assert!(c.fallback);
    }

    #[test]
    fn grubenv_rejects_and_tolerates() {
        assert!(matches!(
            parse_grubenv(b"ORDER=A B\n"),
            Err(BootEnvError::NotGrubenv(_))
        ));
        assert!(parse_grubenv(&[0u8; 1024]).is_err());
        assert!(parse_grubenv(b"").is_err());
        let mut b = b"# GRUB Environment Block\r\nORDER=A B\n".to_vec();
        assert!(parse_grubenv(&b).is_err(), "CRLF header is not GRUB's");
        b = b"# GRUB Environment Block\n# a comment\nnonsense\nA_OK=1\n".to_vec();
        b.extend_from_slice(&[0u8; 100]);
        let env = parse_grubenv(&b).unwrap();
        assert_eq!(env.a_ok.as_deref(), Some("1"));
        assert_eq!(env.malformed_lines.len(), 2, "{:?}", env.malformed_lines);
    }

    #[test]
    fn slot_helpers() {
        assert_eq!(Slot::from_index(1), Some(Slot::B));
        assert_eq!(Slot::from_index(2), None);
        assert_eq!(Slot::A.other(), Slot::B);
        assert_eq!(Slot::B.index(), 1);
        assert_eq!(Slot::from_bootname("a"), None);
        assert_eq!(Slot::A.to_string(), "A");
    }
}

/// Cross-checks against the real tools (`mkenvimage` from u-boot-tools, `grub-editenv` from
/// grub-common); skipped with a message when they are not installed.
#[cfg(test)]
mod tool_tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    fn find_tool(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/sbin", "/usr/sbin"].map(PathBuf::from))
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    #[test]
    fn mkenvimage_blocks_parse() {
        let Some(tool) = find_tool("mkenvimage") else {
            eprintln!("skipping mkenvimage test: u-boot-tools not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("env.txt");
        std::fs::write(
            &txt,
            "BOOT_ORDER=B A\nBOOT_A_LEFT=0\nBOOT_B_LEFT=2\nMACHINE_ID=0123abcd\n",
        )
        .unwrap();
        for size in UBOOT_ENV_SIZES {
            for pad in [None, Some("0")] {
                let out = dir.path().join("env.bin");
                let mut cmd = Command::new(&tool);
                cmd.arg("-s").arg(format!("0x{size:x}"));
                if let Some(p) = pad {
                    cmd.arg("-p").arg(p);
                }
                let st = cmd.arg("-o").arg(&out).arg(&txt).status().unwrap();
                assert!(st.success());
                let mut block = std::fs::read(&out).unwrap();
                assert_eq!(block.len(), size);
                block.resize(0x8000, 0);
                let env = parse_uboot_env(&block).unwrap();
                assert_eq!(env.env_size, Some(size));
                assert_eq!(env.boot_order.as_deref(), Some("B A"));
                assert_eq!(env.machine_id.as_deref(), Some("0123abcd"));
                assert_eq!(env.active_slot().slot, Slot::B);
                // Our builder produces the same variables (padding aside).
                let ours = parse_uboot_env(&build_uboot_env(&env.vars, size)).unwrap();
                assert_eq!(ours.vars, env.vars);
            }
        }
    }

    #[test]
    fn grub_editenv_agrees() {
        let Some(tool) = find_tool("grub-editenv") else {
            eprintln!("skipping grub-editenv test: grub-common not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("grubenv");
        let run = |args: &[&str]| {
            let out = Command::new(&tool).arg(&f).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        run(&["create"]);
        run(&[
            "set",
            "ORDER=B A",
            "A_OK=1",
            "B_OK=1",
            "B_TRY=1",
            "ODD=x\\y",
        ]);
        let env = parse_grubenv(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(env.block_len, 1024);
        assert_eq!(env.order.as_deref(), Some("B A"));
        assert_eq!(env.b_try.as_deref(), Some("1"));
        assert_eq!(env.vars.get("ODD").map(String::as_str), Some("x\\y"));
        assert_eq!(env.active_slot().slot, Slot::B);
        // grub-editenv reads our block back to the same list.
        std::fs::write(&f, build_grubenv(&env.vars)).unwrap();
        let listed = run(&["list"]);
        let mut want: Vec<String> = env.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut got: Vec<String> = listed.lines().map(str::to_string).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
    }
}
