//! Man pages (`man/`) and shell completions (`completions/`) generated from the clap
//! definitions in `src/cli.rs` with clap_mangen and clap_complete, and the rules the help text
//! keeps: every argument and subcommand has help, and `--help`/`-h` of every command fits 80
//! columns.
//!
//! The committed files must equal what the code generates; after changing the command line,
//! regenerate them with (docs/testing.md):
//!
//! ```sh
//! LIFEBOAT_REGENERATE=1 cargo test --test generated_docs
//! ```

use clap::CommandFactory;
use clap_complete::Shell;
use lifeboat::cli::Cli;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const REGENERATE: &str = "LIFEBOAT_REGENERATE=1 cargo test --test generated_docs";

/// The built command tree (display names `lifeboat-backup-list` …, no `help` subcommand).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every visible command, depth first, with the words that invoke it (`["backup", "list"]`).
fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut p = path.clone();
        p.push(sub.get_name().to_string());
        walk(sub, p, out);
    }
}

fn commands() -> Vec<(Vec<String>, clap::Command)> {
    let mut out = Vec::new();
    walk(&command(), Vec::new(), &mut out);
    out
}

/// Every generated file, by path relative to the crate root.
fn generate() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for (_, cmd) in commands() {
        let man = clap_mangen::Man::new(cmd);
        let mut buf = Vec::new();
        man.render(&mut buf).expect("rendering a man page");
        files.insert(Path::new("man").join(man.get_filename()), buf);
    }
    for (shell, name) in [
        (Shell::Bash, "lifeboat.bash"),
        (Shell::Zsh, "_lifeboat"),
        (Shell::Fish, "lifeboat.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "lifeboat", &mut buf);
        files.insert(Path::new("completions").join(name), buf);
    }
    files
}

/// Files now in `man/` and `completions/` (relative paths).
fn committed(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["man", "completions"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            for e in rd.flatten() {
                out.push(Path::new(dir).join(e.file_name()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn man_pages_and_completions_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let want = generate();
    if std::env::var_os("LIFEBOAT_REGENERATE").is_some_and(|v| v == "1") {
        for stale in committed(root).iter().filter(|p| !want.contains_key(*p)) {
            std::fs::remove_file(root.join(stale)).expect("removing a stale file");
            eprintln!("removed {}", stale.display());
        }
        for (rel, bytes) in &want {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().expect("man/ or completions/"))
                .expect("creating the directory");
            if std::fs::read(&p).ok().as_deref() != Some(bytes.as_slice()) {
                std::fs::write(&p, bytes).expect("writing a generated file");
                eprintln!("wrote {}", rel.display());
            }
        }
        return;
    }
    let mut problems = Vec::new();
    for (rel, bytes) in &want {
        match std::fs::read(root.join(rel)) {
            Ok(b) if b == *bytes => {}
            Ok(_) => problems.push(format!("{} differs from the code", rel.display())),
            Err(e) => problems.push(format!("{}: {e}", rel.display())),
        }
    }
    for stale in committed(root).iter().filter(|p| !want.contains_key(*p)) {
        problems.push(format!("{} is not generated any more", stale.display()));
    }
    assert!(
        problems.is_empty(),
        "man pages or completions drifted from src/cli.rs; regenerate them with\n  {REGENERATE}\n{}",
        problems.join("\n")
    );
    // One page per visible command, and the main page names the subcommands.
    let names: Vec<String> = commands()
        .iter()
        .map(|(p, _)| {
            std::iter::once("lifeboat".to_string())
                .chain(p.iter().cloned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect();
    for n in &names {
        assert!(
            want.contains_key(&Path::new("man").join(format!("{n}.1"))),
            "{n}"
        );
    }
    let main = String::from_utf8_lossy(&want[Path::new("man/lifeboat.1")]).into_owned();
    for (p, _) in commands().iter().filter(|(p, _)| p.len() == 1) {
        // roff escapes every hyphen: `lifeboat\-media\-test`.
        let roff = format!("lifeboat\\-{}", p[0].replace('-', "\\-"));
        assert!(main.contains(&roff), "{}", p[0]);
    }
}

#[test]
fn every_command_and_argument_has_help() {
    let mut missing = Vec::new();
    for (path, cmd) in commands() {
        let name = format!("lifeboat {}", path.join(" "));
        if !path.is_empty() && cmd.get_about().is_none() {
            missing.push(format!("{name}: no about"));
        }
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{name}: {} has no help", a.get_id()));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn help_fits_80_columns() {
    let mut wide = Vec::new();
    for (path, _) in commands() {
        for flag in ["--help", "-h"] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_lifeboat"))
                .args(&path)
                .arg(flag)
                .env("COLUMNS", "200")
                .output()
                .expect("running lifeboat --help");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "lifeboat {} {flag}", path.join(" "));
            assert!(text.contains("Usage: lifeboat"), "{text}");
            for line in text.lines() {
                let w = line.chars().count();
                if w > 80 {
                    wide.push(format!("lifeboat {} {flag} ({w}): {line}", path.join(" ")));
                }
            }
        }
    }
    assert!(
        wide.is_empty(),
        "lines over 80 columns:\n{}",
        wide.join("\n")
    );
}
