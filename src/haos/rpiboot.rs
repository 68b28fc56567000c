//! Raspberry Pi 5 "tryboot" slot selection (no U-Boot; layout notes §6b), from the text
//! files on the boot FAT, as pure parsers plus an evaluation:
//!
//! - `cmdline.txt`, first line: `root=PARTUUID=…`, `rauc.slot=A|B`, `systemd.machine_id=…`.
//!   Its `rauc.slot` is the *committed* slot (what HAOS's RAUC backend reports as primary).
//! - `config.txt`: `os_prefix=slot-A/` selects the kernel directory, `cmdline=/cmdline.txt`.
//!   Section filters (`[pi5]`, `[tryboot]`, …) are handled conservatively: only settings
//!   before any filter or under `[all]` count; conditional ones are listed separately.
//! - `tryboot.txt` + `cmdline-tryboot.txt`: an installed update staged for its one trial
//!   boot. The firmware reads them only when the running OS reboots with the volatile
//!   `tryboot` flag (`reboot '0 tryboot'`); a power-on of offline media boots the committed
//!   slot, and HAOS then drops the stale staging when the slot is marked good.
//! - `slot-A/.good`, `slot-B/.good`: RAUC's "good" mark for each slot.

use super::bootenv::{Slot, SlotChoice};

/// PARTUUID of `hassos-system0` (slot A) on GPT/hybrid boards.
pub const PARTUUID_SYSTEM_A: &str = "8d3d53e3-6d49-4c38-8349-aff6859e82fd";
/// PARTUUID of `hassos-system1` (slot B) on GPT/hybrid boards.
pub const PARTUUID_SYSTEM_B: &str = "a3ec664e-32ce-4665-95ea-7ae90ce9aa20";

/// The slot whose rootfs a `root=PARTUUID=` value names (GPT constants, or the MBR boards'
/// `48617373-06` / `-08`).
pub fn slot_for_root_partuuid(partuuid: &str) -> Option<Slot> {
    match partuuid.trim().to_ascii_lowercase().as_str() {
        PARTUUID_SYSTEM_A | "48617373-06" => Some(Slot::A),
        PARTUUID_SYSTEM_B | "48617373-08" => Some(Slot::B),
        _ => None,
    }
}

/// Errors of the RPi boot-file parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpiBootError {
    #[error("{file} contains NUL bytes (zeroed or torn write, not a text file)")]
    Binary { file: &'static str },
    #[error("{file}: first line is empty")]
    Empty { file: &'static str },
    #[error("neither cmdline.txt nor config.txt could be read: cannot tell the RPi5 boot slot")]
    NothingToEvaluate,
}

/// The kernel command line from the first line of `cmdline.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Cmdline {
    /// The first line as stored (trimmed).
    pub raw: String,
    /// Every parameter in order: `key` or `key=value` (outer double quotes removed).
    pub params: Vec<(String, Option<String>)>,
    /// The full `root=` value (the last one, as the kernel uses).
    pub root: Option<String>,
    /// Lower-cased PARTUUID when `root=PARTUUID=…`.
    pub root_partuuid: Option<String>,
    /// `rauc.slot=A|B`; `None` when absent or another value (see `params`).
    pub rauc_slot: Option<Slot>,
    /// `systemd.machine_id=` when present and non-empty.
    pub machine_id: Option<String>,
}

impl Cmdline {
    /// The last value of parameter `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }
    /// The slot named by `root=PARTUUID=`.
    pub fn root_slot(&self) -> Option<Slot> {
        slot_for_root_partuuid(self.root_partuuid.as_deref()?)
    }
}

fn check_text(bytes: &[u8], file: &'static str) -> Result<String, RpiBootError> {
    if bytes.contains(&0) {
        return Err(RpiBootError::Binary { file });
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Parse `cmdline.txt` (or `cmdline-tryboot.txt`) bytes; see [`parse_cmdline`].
pub fn parse_cmdline_bytes(bytes: &[u8]) -> Result<Cmdline, RpiBootError> {
    parse_cmdline(&check_text(bytes, "cmdline.txt")?)
}

/// Parse the first line of a kernel command-line file: whitespace-separated parameters,
/// double quotes group spaces (`key="a b"`).
pub fn parse_cmdline(text: &str) -> Result<Cmdline, RpiBootError> {
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix('\u{feff}').unwrap_or(first);
    if first.is_empty() {
        return Err(RpiBootError::Empty {
            file: "cmdline.txt",
        });
    }
    let mut params = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut any = false;
    for c in first.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                any = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if any {
                    params.push(split_param(&std::mem::take(&mut cur)));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        params.push(split_param(&cur));
    }
    let mut cl = Cmdline {
        raw: first.to_string(),
        params,
        ..Cmdline::default()
    };
    cl.root = cl.get("root").map(str::to_string);
    cl.root_partuuid = cl
        .root
        .as_deref()
        .and_then(|r| r.strip_prefix("PARTUUID="))
        .map(str::to_ascii_lowercase);
    cl.rauc_slot = cl.get("rauc.slot").and_then(Slot::from_bootname);
    cl.machine_id = cl
        .get("systemd.machine_id")
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    Ok(cl)
}

/// Lenient [`parse_cmdline`]: an empty file gives an empty [`Cmdline`] (no slot, no root).
pub fn parse_cmdline_txt(text: &str) -> Cmdline {
    parse_cmdline(text).unwrap_or_default()
}

fn split_param(p: &str) -> (String, Option<String>) {
    match p.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (p.to_string(), None),
    }
}

/// A `key=value` of config.txt that applies only under a section filter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConditionalSetting {
    /// The filter line, e.g. `[pi5]` or `[tryboot]`.
    pub filter: String,
    pub key: String,
    pub value: String,
}

/// The parts of `config.txt` (or `tryboot.txt`) that decide the boot slot.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ConfigTxt {
    /// Unconditional (or `[all]`) `os_prefix`, the last one set.
    pub os_prefix: Option<String>,
    /// Unconditional (or `[all]`) `cmdline`, the last one set.
    pub cmdline: Option<String>,
    /// `os_prefix`/`cmdline` set under another filter: not used for the decision.
    pub conditional: Vec<ConditionalSetting>,
    /// `include` directives (not followed).
    pub includes: Vec<String>,
}

impl ConfigTxt {
    /// The slot named by `os_prefix` (`slot-A/` → A).
    pub fn os_prefix_slot(&self) -> Option<Slot> {
        let p = self.os_prefix.as_deref()?.trim();
        let p = p.strip_prefix('/').unwrap_or(p);
        let p = p.strip_suffix('/').unwrap_or(p);
        Slot::from_bootname(p.strip_prefix("slot-")?)
    }
}

/// Parse `config.txt` bytes; see [`parse_config_txt`].
pub fn parse_config_txt_bytes(bytes: &[u8]) -> Result<ConfigTxt, RpiBootError> {
    Ok(parse_config_txt(&check_text(bytes, "config.txt")?))
}

/// Parse `config.txt`: `#` comments, `[filter]` sections, `key=value` lines (the firmware
/// has no inline comments, so the value is the rest of the line, trimmed).
pub fn parse_config_txt(text: &str) -> ConfigTxt {
    let mut cfg = ConfigTxt::default();
    let mut filter: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            let end = line.find(']').map_or(line.len(), |i| i + 1);
            let f = line.get(..end).unwrap_or(line);
            filter = if f.eq_ignore_ascii_case("[all]") {
                None
            } else {
                Some(f.to_string())
            };
            continue;
        }
        if let Some(rest) = line.strip_prefix("include")
            && rest.starts_with(char::is_whitespace)
        {
            cfg.includes.push(rest.trim().to_string());
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = k.trim().to_ascii_lowercase();
        if key != "os_prefix" && key != "cmdline" {
            continue;
        }
        let value = v.trim().to_string();
        match &filter {
            None if key == "os_prefix" => cfg.os_prefix = Some(value),
            None => cfg.cmdline = Some(value),
            Some(f) => cfg.conditional.push(ConditionalSetting {
                filter: f.clone(),
                key,
                value,
            }),
        }
    }
    cfg
}

/// The boot-partition files that decide an RPi5's slot, as read (None = absent/unreadable).
#[derive(Debug, Clone, Copy, Default)]
pub struct RpiBootFiles<'a> {
    pub cmdline_txt: Option<&'a [u8]>,
    pub config_txt: Option<&'a [u8]>,
    pub tryboot_txt: Option<&'a [u8]>,
    pub cmdline_tryboot_txt: Option<&'a [u8]>,
    /// `slot-A/.good` exists.
    pub good_a: bool,
    /// `slot-B/.good` exists.
    pub good_b: bool,
}

/// What the RPi5 boot files say.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RpiBootState {
    /// The slot a power-on boots (the committed slot), and why.
    pub active: SlotChoice,
    pub cmdline: Option<Cmdline>,
    pub config: Option<ConfigTxt>,
    /// `tryboot.txt` exists: an installed update awaits its trial boot.
    pub update_pending: bool,
    /// The slot staged for the trial boot (from `cmdline-tryboot.txt`, else `tryboot.txt`).
    pub staged: Option<Slot>,
    /// RAUC "good" marks (`slot-A/.good`, `slot-B/.good`).
    pub good_a: bool,
    pub good_b: bool,
    /// Inconsistencies worth showing (kernel dir and rootfs disagree, unreadable files…).
    pub warnings: Vec<String>,
}

/// Decide the RPi5 slot from its boot files. `cmdline.txt`'s `rauc.slot` is the committed
/// slot (falling back to its root PARTUUID, then to `config.txt`'s `os_prefix`); a
/// disagreement between the kernel directory and the rootfs is reported as a warning and
/// marks the choice as `fallback`.
pub fn evaluate(files: &RpiBootFiles<'_>) -> Result<RpiBootState, RpiBootError> {
    let mut warnings = Vec::new();
    let cmdline = match files.cmdline_txt.map(parse_cmdline_bytes) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            warnings.push(e.to_string());
            None
        }
        None => {
            warnings.push("cmdline.txt is missing".to_string());
            None
        }
    };
    let config = match files.config_txt.map(parse_config_txt_bytes) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            warnings.push(e.to_string());
            None
        }
        None => {
            warnings.push("config.txt is missing".to_string());
            None
        }
    };
    if cmdline.is_none() && config.is_none() {
        return Err(RpiBootError::NothingToEvaluate);
    }

    let prefix_slot = config.as_ref().and_then(ConfigTxt::os_prefix_slot);
    if let Some(cfg) = &config {
        if cfg.os_prefix.is_none() {
            warnings.push("config.txt sets no unconditional os_prefix".to_string());
        } else if prefix_slot.is_none() {
            warnings.push(format!(
                "config.txt os_prefix={:?} names no slot directory",
                cfg.os_prefix.as_deref().unwrap_or("")
            ));
        }
        for c in &cfg.conditional {
            warnings.push(format!(
                "config.txt sets {}={} under {}; ignored",
                c.key, c.value, c.filter
            ));
        }
        if let Some(cl) = cfg.cmdline.as_deref()
            && cl.trim_start_matches('/') != "cmdline.txt"
        {
            warnings.push(format!(
                "config.txt cmdline={cl}: the firmware reads another file than /cmdline.txt"
            ));
        }
        for inc in &cfg.includes {
            warnings.push(format!("config.txt includes {inc}, not followed"));
        }
    }

    let (cl_slot, cl_why) = match &cmdline {
        Some(c) => match (c.rauc_slot, c.root_slot()) {
            (Some(s), root) => {
                if root.is_some_and(|r| r != s) {
                    warnings.push(format!(
                        "cmdline.txt says rauc.slot={s} but root=PARTUUID names slot {}",
                        s.other()
                    ));
                }
                (Some(s), format!("cmdline.txt rauc.slot={s}"))
            }
            (None, Some(r)) => (
                Some(r),
                format!("cmdline.txt root=PARTUUID names slot {r} (no rauc.slot)"),
            ),
            (None, None) => (None, String::new()),
        },
        None => (None, String::new()),
    };

    let mut fallback = false;
    let (slot, mut reason) = match (cl_slot, prefix_slot) {
        (Some(s), Some(p)) if s == p => (s, format!("{cl_why}, config.txt os_prefix=slot-{p}/")),
        (Some(s), Some(p)) => {
            fallback = true;
            warnings.push(format!(
                "kernel comes from slot-{p}/ (config.txt) but the rootfs is slot {s} (cmdline.txt)"
            ));
            (
                s,
                format!("{cl_why}, but config.txt os_prefix=slot-{p}/ disagrees"),
            )
        }
        (Some(s), None) => (s, cl_why),
        (None, Some(p)) => {
            fallback = true;
            (
                p,
                format!("config.txt os_prefix=slot-{p}/ (cmdline.txt names no slot)"),
            )
        }
        (None, None) => {
            fallback = true;
            (
                Slot::A,
                "no slot named in cmdline.txt or config.txt; assuming A".to_string(),
            )
        }
    };

    let update_pending = files.tryboot_txt.is_some();
    let staged_cmdline = files
        .cmdline_tryboot_txt
        .and_then(|b| parse_cmdline_bytes(b).ok())
        .and_then(|c| c.rauc_slot.or_else(|| c.root_slot()));
    let staged_prefix = files
        .tryboot_txt
        .and_then(|b| parse_config_txt_bytes(b).ok())
        .and_then(|c| c.os_prefix_slot());
    let staged = staged_cmdline.or(staged_prefix);
    if let (Some(a), Some(b)) = (staged_cmdline, staged_prefix)
        && a != b
    {
        warnings.push(format!(
            "cmdline-tryboot.txt stages slot {a} but tryboot.txt os_prefix names slot {b}"
        ));
    }
    if update_pending {
        match staged {
            Some(s) => reason.push_str(&format!(
                "; tryboot.txt stages slot {s} for a one-time trial, taken only on a \
                 `reboot '0 tryboot'` from the running OS, not on power-on"
            )),
            None => reason.push_str("; tryboot.txt exists but names no slot"),
        }
        if files.cmdline_tryboot_txt.is_none() {
            warnings.push("tryboot.txt exists without cmdline-tryboot.txt".to_string());
        }
    } else if files.cmdline_tryboot_txt.is_some() {
        warnings.push("cmdline-tryboot.txt exists without tryboot.txt (stale)".to_string());
    }
    let good = match slot {
        Slot::A => files.good_a,
        Slot::B => files.good_b,
    };
    if !good {
        reason.push_str(&format!(
            "; slot-{slot}/.good is missing (RAUC reports the slot as bad)"
        ));
    }

    Ok(RpiBootState {
        active: SlotChoice {
            slot,
            reason,
            fallback,
        },
        cmdline,
        config,
        update_pending,
        staged,
        good_a: files.good_a,
        good_b: files.good_b,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMDLINE_A: &str = "zram.enabled=1 zram.num_devices=3 rootwait cgroup_enable=memory fsck.repair=yes console=tty1 root=PARTUUID=8d3d53e3-6d49-4c38-8349-aff6859e82fd rootfstype=erofs ro rauc.slot=A systemd.machine_id=0123456789abcdef0123456789abcdef\nsecond line ignored\n";
    const CONFIG_A: &str = "# HAOS\n[all]\nkernel=kernel_2712.img\nos_prefix=slot-A/\ncmdline=/cmdline.txt\n\n[pi5]\ndtoverlay=vc4-kms-v3d\n";

    #[test]
    fn cmdline_fields() {
        let c = parse_cmdline(CMDLINE_A).unwrap();
        assert_eq!(c.rauc_slot, Some(Slot::A));
        assert_eq!(c.root_partuuid.as_deref(), Some(PARTUUID_SYSTEM_A));
        assert_eq!(c.root_slot(), Some(Slot::A));
        assert_eq!(
            c.machine_id.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(c.get("rootwait"), None);
        assert!(c.params.iter().any(|(k, v)| k == "rootwait" && v.is_none()));
        assert!(!c.raw.contains("second"));

        let c = parse_cmdline("a=\"x y\" root=PARTUUID=A3EC664E-32CE-4665-95EA-7AE90CE9AA20 rauc.slot=C systemd.machine_id=\r\n").unwrap();
        assert_eq!(c.get("a"), Some("x y"));
        assert_eq!(c.rauc_slot, None);
        assert_eq!(c.root_slot(), Some(Slot::B));
        assert_eq!(c.machine_id, None);
        assert!(parse_cmdline("\n").is_err());
        assert_eq!(parse_cmdline_txt(""), Cmdline::default());
        assert_eq!(parse_cmdline_txt(CMDLINE_A).rauc_slot, Some(Slot::A));
        assert!(parse_cmdline("").is_err());
        assert!(parse_cmdline_bytes(b"root=x\0").is_err());
    }

    #[test]
    fn config_filters() {
        let c = parse_config_txt(CONFIG_A);
        assert_eq!(c.os_prefix.as_deref(), Some("slot-A/"));
        assert_eq!(c.os_prefix_slot(), Some(Slot::A));
        assert_eq!(c.cmdline.as_deref(), Some("/cmdline.txt"));
        assert!(c.conditional.is_empty());

        let c = parse_config_txt(
            "os_prefix=slot-B/\n[tryboot]\nos_prefix=slot-A/\n[ALL]\n# os_prefix=slot-A/\ninclude extra.txt\n",
        );
        assert_eq!(c.os_prefix_slot(), Some(Slot::B));
        assert_eq!(c.conditional.len(), 1);
        assert_eq!(c.conditional[0].filter, "[tryboot]");
        assert_eq!(c.includes, ["extra.txt"]);
        assert_eq!(parse_config_txt("os_prefix=boot/\n").os_prefix_slot(), None);
        assert_eq!(parse_config_txt("").os_prefix, None);
    }

    #[test]
    fn evaluate_committed_and_pending() {
        let files = RpiBootFiles {
            cmdline_txt: Some(CMDLINE_A.as_bytes()),
            config_txt: Some(CONFIG_A.as_bytes()),
            good_a: true,
            ..RpiBootFiles::default()
        };
        let st = evaluate(&files).unwrap();
        assert_eq!(st.active.slot, Slot::A);
        assert!(!st.active.fallback);
        assert!(!st.update_pending);
        assert!(st.warnings.is_empty(), "{:?}", st.warnings);

        // Update staged into B, as the HAOS RAUC backend writes it.
        let cmd_b = CMDLINE_A
            .replace("rauc.slot=A", "rauc.slot=B")
            .replace(PARTUUID_SYSTEM_A, PARTUUID_SYSTEM_B);
        let try_b = CONFIG_A
            .replace("slot-A/", "slot-B/")
            .replace("/cmdline.txt", "/cmdline-tryboot.txt");
        let files = RpiBootFiles {
            tryboot_txt: Some(try_b.as_bytes()),
            cmdline_tryboot_txt: Some(cmd_b.as_bytes()),
            ..files
        };
        let st = evaluate(&files).unwrap();
        assert_eq!(st.active.slot, Slot::A);
        assert!(st.update_pending);
        assert_eq!(st.staged, Some(Slot::B));
        assert!(st.active.reason.contains("tryboot"), "{}", st.active.reason);
        assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    }

    #[test]
    fn evaluate_inconsistent_and_partial() {
        let cfg_b = CONFIG_A.replace("slot-A/", "slot-B/");
        let st = evaluate(&RpiBootFiles {
            cmdline_txt: Some(CMDLINE_A.as_bytes()),
            config_txt: Some(cfg_b.as_bytes()),
            ..RpiBootFiles::default()
        })
        .unwrap();
        assert_eq!(st.active.slot, Slot::A);
        assert!(st.active.fallback);
        assert!(st.warnings.iter().any(|w| w.contains("slot-B/")));
        assert!(st.active.reason.contains(".good is missing"));

        let st = evaluate(&RpiBootFiles {
            config_txt: Some(cfg_b.as_bytes()),
            good_b: true,
            ..RpiBootFiles::default()
        })
        .unwrap();
        assert_eq!(st.active.slot, Slot::B);
        assert!(
            st.warnings
                .iter()
                .any(|w| w.contains("cmdline.txt is missing"))
        );

        let st = evaluate(&RpiBootFiles {
            cmdline_txt: Some(b"root=PARTUUID=a3ec664e-32ce-4665-95ea-7ae90ce9aa20 rauc.slot=A"),
            ..RpiBootFiles::default()
        })
        .unwrap();
        assert_eq!(st.active.slot, Slot::A);
        assert!(st.warnings.iter().any(|w| w.contains("root=PARTUUID")));

        assert_eq!(
            evaluate(&RpiBootFiles::default()),
            Err(RpiBootError::NothingToEvaluate)
        );
        assert_eq!(
            evaluate(&RpiBootFiles {
                cmdline_txt: Some(&[0u8; 16]),
                config_txt: Some(&[0u8; 16]),
                ..RpiBootFiles::default()
            }),
            Err(RpiBootError::NothingToEvaluate)
        );
        let st = evaluate(&RpiBootFiles {
            cmdline_txt: Some(b"quiet"),
            config_txt: Some(b"kernel=x\n"),
            cmdline_tryboot_txt: Some(b"rauc.slot=B"),
            ..RpiBootFiles::default()
        })
        .unwrap();
        assert_eq!(st.active.slot, Slot::A);
        assert!(st.active.fallback);
        assert!(!st.update_pending);
        assert!(st.warnings.iter().any(|w| w.contains("stale")));
    }

    #[test]
    fn partuuid_map() {
        assert_eq!(slot_for_root_partuuid("48617373-06"), Some(Slot::A));
        assert_eq!(slot_for_root_partuuid("48617373-08"), Some(Slot::B));
        assert_eq!(
            slot_for_root_partuuid("b3dd0952-733c-4c88-8cba-cab9b8b4377f"),
            None
        );
    }
}
