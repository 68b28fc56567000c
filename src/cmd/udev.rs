//! `lifeboat udev install [--print]`: the udev rules of `udev/61-lifeboat.rules` (embedded in
//! the binary), printed or installed into `/etc/udev/rules.d` followed by a reload of udev and a
//! `change` event for block devices, so disks already attached get the properties.

use crate::error::Outcome;
use crate::report::Output;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rules file, as shipped in `udev/` and in the Debian package.
pub const RULES: &str = include_str!("../../udev/61-lifeboat.rules");

/// File name of the rules (61-: after 60-persistent-storage.rules, whose blkid properties
/// they match).
pub const RULES_NAME: &str = "61-lifeboat.rules";

/// Arguments of `udev`.
#[derive(Debug, Args)]
pub struct UdevArgs {
    #[command(subcommand)]
    pub action: UdevAction,
}

/// What `udev` does.
#[derive(Debug, Subcommand)]
pub enum UdevAction {
    /// Install the rules that keep desktops from mounting HAOS media
    Install(InstallArgs),
}

/// Arguments of `udev install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the rules on stdout instead of installing them
    #[arg(long)]
    pub print: bool,
    /// Directory to install the rules into
    #[arg(long, value_name = "DIR", default_value = "/etc/udev/rules.d")]
    pub dir: PathBuf,
    /// Do not run udevadm (reload the rules, replay block device events)
    #[arg(long)]
    pub no_reload: bool,
}

#[derive(Debug, Serialize)]
struct InstallDoc {
    schema_version: u32,
    path: PathBuf,
    reloaded: bool,
}

/// Run `udev`.
pub fn run(args: &UdevArgs, out: &Output) -> Result<Outcome> {
    match &args.action {
        UdevAction::Install(a) => install(a, out),
    }
}

fn install(a: &InstallArgs, out: &Output) -> Result<Outcome> {
    if a.print {
        // The rules themselves are the output, also with --json or --quiet.
        print!("{RULES}");
        return Ok(Outcome::Ok);
    }
    let path = a.dir.join(RULES_NAME);
    write_atomically(&a.dir, &path)?;
    let reloaded = !a.no_reload;
    if reloaded {
        udevadm(&["control", "--reload"])?;
        udevadm(&["trigger", "--subsystem-match=block", "--action=change"])?;
    }
    if out.json {
        out.json_doc(&InstallDoc {
            schema_version: crate::report::SCHEMA_VERSION,
            path,
            reloaded,
        });
    } else {
        out.text(&format!(
            "installed {}{}\n",
            path.display(),
            if reloaded {
                "; udev rules reloaded and block devices re-announced"
            } else {
                ""
            }
        ));
    }
    Ok(Outcome::Ok)
}

fn write_atomically(dir: &Path, path: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("{}: not a directory (is udev installed?)", dir.display());
    }
    let tmp = dir.join(format!(".{RULES_NAME}.lifeboat-{}", std::process::id()));
    std::fs::write(&tmp, RULES).with_context(|| format!("writing {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("installing {}", path.display()));
    }
    Ok(())
}

fn udevadm(args: &[&str]) -> Result<()> {
    let st = Command::new("udevadm")
        .args(args)
        .status()
        .with_context(|| {
            format!(
                "running udevadm {} (the rules are installed)",
                args.join(" ")
            )
        })?;
    if !st.success() {
        bail!(
            "udevadm {} failed ({st}); the rules are installed",
            args.join(" ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules file's shape: every line a comment, blank, or a rule of `KEY op "value"`
    /// pairs; every GOTO has its LABEL; the fixed PARTUUIDs and HAOS names of
    /// [`crate::haos::layout`] all appear.
    #[test]
    fn rules_file_shape() {
        let mut labels = Vec::new();
        let mut gotos = Vec::new();
        for (n, line) in RULES.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut rest = line;
            while !rest.is_empty() {
                let q = rest
                    .find('"')
                    .unwrap_or_else(|| panic!("line {}: no quoted value: {rest}", n + 1));
                let (lhs, after) = rest.split_at(q);
                let op = ["==", "!=", "+=", ":=", "="]
                    .into_iter()
                    .find(|op| lhs.ends_with(op))
                    .unwrap_or_else(|| panic!("line {}: no operator: {lhs}", n + 1));
                let key = &lhs[..lhs.len() - op.len()];
                let close = after[1..]
                    .find('"')
                    .unwrap_or_else(|| panic!("line {}: unterminated value", n + 1));
                let value = &after[1..1 + close];
                rest = after[2 + close..].trim_start_matches(", ");
                assert!(
                    !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "{}_".contains(c)),
                    "line {}: key {key:?}",
                    n + 1
                );
                match key {
                    "LABEL" => labels.push(value.to_string()),
                    "GOTO" => gotos.push(value.to_string()),
                    _ => {}
                }
            }
        }
        for g in &gotos {
            assert!(labels.contains(g), "GOTO {g} without LABEL");
        }
        assert!(labels.contains(&"lifeboat_end".to_string()));
        assert!(RULES.trim_end().ends_with("LABEL=\"lifeboat_end\""));
        use crate::haos::layout::{BOOT_DISK_ROLES, DATA_LABELS};
        for role in BOOT_DISK_ROLES {
            let uuid = role.gpt_partuuid().expect("boot-disk roles have PARTUUIDs");
            assert!(RULES.contains(&format!("ENV{{ID_PART_ENTRY_UUID}}==\"{uuid}\"")));
            assert!(RULES.contains(&format!(
                "ENV{{ID_PART_ENTRY_NAME}}==\"{}\"",
                role.gpt_name()
            )));
        }
        for n in [1, 3, 4, 5, 6, 7, 8, 9] {
            assert!(RULES.contains(&format!("\"48617373-0{n}\"")));
        }
        for (label, _) in DATA_LABELS {
            assert!(RULES.contains(label), "{label}");
        }
        for key in [
            "ENV{UDISKS_IGNORE}=\"1\"",
            "ENV{UDISKS_AUTO}=\"0\"",
            "ENV{LIFEBOAT_HAOS}=\"1\"",
            "SYMLINK+=\"disk/by-lifeboat/$env{LIFEBOAT_ID}-$env{LIFEBOAT_ROLE}\"",
            "ACTION==\"remove\", GOTO=\"lifeboat_end\"",
        ] {
            assert!(RULES.contains(key), "{key}");
        }
    }

    #[test]
    fn install_writes_the_rules_into_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = InstallArgs {
            print: false,
            dir: dir.path().to_path_buf(),
            no_reload: true,
        };
        install(&a, &Output::new(false, true)).expect("install");
        let got = std::fs::read_to_string(dir.path().join(RULES_NAME)).expect("installed");
        assert_eq!(got, RULES);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
        let missing = InstallArgs {
            dir: dir.path().join("nope"),
            ..a
        };
        assert!(install(&missing, &Output::new(false, true)).is_err());
    }
}
