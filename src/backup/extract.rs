//! `backup extract`: decrypt and unpack inner archives safely. Every path is opened component
//! by component relative to the archive's own directory with `O_NOFOLLOW`, so nothing is
//! written outside it or through a symlink; absolute names and `..` that climbs out are
//! refused; sizes and member counts are bounded (decompression bombs). Each archive is built
//! in a temporary directory next to its final place and renamed into place when complete;
//! an existing result is only replaced with `force`. Modes are kept (without setuid, setgid,
//! sticky and group/other write, like Python's `tar` filter); `.storage`, secrets and the
//! Supervisor's token-bearing JSON files are made owner-only; each archive's top directory
//! is 0700. Ownership: run as root, files, directories and symlinks get the numeric uid/gid
//! of their tar headers (names are not looked up: add-on data belongs to ids inside
//! containers, not to this machine's users), unless `--no-same-owner`; otherwise, as with
//! GNU tar, they belong to the user running lifeboat. Speed: inner archives are extracted
//! two at a time, each through read + decrypt | inflate | tar + writes on three threads.

use super::archive::{self, Backup};
use super::check::{self, Bounded};
use super::inner::{self, EntryKind};
use super::password::Password;
use super::securetar::{KeyRing, Version};
use super::tarscan::{self, Member};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, UtimensatFlags, fchmod, futimens, mkdirat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use serde::Serialize;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Options of an extraction.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Archive names to extract (`homeassistant`, an add-on slug, `share`, `addons_local` or
    /// `addons/local`, …); empty = all.
    pub only: Vec<String>,
    /// Replace results of an earlier extraction.
    pub force: bool,
    /// Most bytes to write in all (default: the free space of the target filesystem).
    pub max_bytes: Option<u64>,
    /// Most members per archive (default 10 million).
    pub max_entries: Option<u64>,
    /// Give members the numeric uid/gid of their headers (needs root; see [`default_same_owner`]).
    pub same_owner: bool,
}

/// Restore ownership by default only when running as root, like GNU tar.
pub fn default_same_owner() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Most ownership failures listed one by one (the rest are counted).
const MAX_OWNER_WARNINGS: usize = 20;

/// One extracted archive.
#[derive(Debug, Clone, Serialize)]
pub struct Extracted {
    /// Member name, e.g. `homeassistant.tar.gz`.
    pub archive: String,
    /// Where it went.
    pub dir: String,
    pub encryption: Option<Version>,
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub bytes: u64,
    /// Members not extracted (devices, FIFOs, unknown types), with the reason.
    pub skipped: Vec<String>,
    /// Whether owners and groups were restored from the headers.
    pub same_owner: bool,
    /// Members whose owner could not be set (e.g. a target filesystem without owners).
    pub owner_failures: Vec<String>,
}

/// The result of `extract`.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractReport {
    pub path: String,
    pub target: String,
    pub backup_json: String,
    pub archives: Vec<Extracted>,
}

/// File names whose content is a secret (owner-only on disk).
fn sensitive(parts: &[String]) -> bool {
    parts
        .iter()
        .any(|p| p == ".storage" || p == ".cloud" || p == ".ssh")
        || parts.last().is_some_and(|n| {
            matches!(
                n.as_str(),
                "secrets.yaml"
                    | "homeassistant.json"
                    | "addon.json"
                    | "options.json"
                    | "mounts.json"
                    | "docker.json"
                    | ".HA_RESTORE"
                    | "id_rsa"
                    | "id_ed25519"
            ) || n.ends_with(".key")
                || n.ends_with(".pem")
        })
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Does `--only x` select this archive?
fn selected(only: &[String], m: &Member) -> bool {
    let stem = archive::archive_stem(m);
    only.is_empty()
        || only
            .iter()
            .any(|o| o == stem || o.replace('/', "_") == stem || o == tarscan::normalise(&m.name))
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
}

/// Extract `b` into `out` (created if missing): `out/backup.json` and one directory per
/// inner archive, named by its stem (`out/homeassistant`, `out/core_mosquitto`, `out/share`).
pub fn extract(
    b: &Backup,
    out: &Path,
    password: Option<Password>,
    opts: &Options,
) -> Result<ExtractReport> {
    let meta = b.require_meta()?;
    let protected = b.protected();
    let archives: Vec<&Member> = b
        .inner_archives()
        .into_iter()
        .filter(|m| selected(&opts.only, m))
        .collect();
    if archives.is_empty() {
        let have: Vec<&str> = b
            .inner_archives()
            .iter()
            .map(|m| archive::archive_stem(m))
            .collect();
        anyhow::bail!(
            "{}: no inner archive matches --only {} (the backup has: {})",
            b.what,
            opts.only.join(","),
            have.join(", ")
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let out = out
        .canonicalize()
        .with_context(|| format!("{}: cannot resolve", out.display()))?;
    // Refuse before doing any work if results exist.
    let mut targets = Vec::new();
    for m in &archives {
        let dest = out.join(archive::archive_stem(m));
        if dest.symlink_metadata().is_ok() && !opts.force {
            anyhow::bail!("{}: exists; add --force to replace it", dest.display());
        }
        targets.push(dest);
    }
    let json_dest = out.join("backup.json");
    if json_dest.symlink_metadata().is_ok() && !opts.force {
        anyhow::bail!("{}: exists; add --force to replace it", json_dest.display());
    }
    // The password, checked once up front.
    let mut encrypted = Vec::new();
    for m in &archives {
        let (_, enc) = inner::layers_of(b.reader(), m, protected)
            .with_context(|| format!("{}: {}", b.what, m.name))?;
        encrypted.push(enc);
    }
    let mut keys = None;
    if let Some(v) = encrypted.iter().flatten().next() {
        let Some(pw) = password else {
            anyhow::bail!(
                "{}: is password-protected (SecureTar {v}); give --password-file FILE or \
                 --emergency-kit FILE, set LIFEBOAT_BACKUP_PASSWORD, or run on a terminal to be asked",
                b.what
            );
        };
        let mut ring = KeyRing::new(pw);
        let (m, _) = archives
            .iter()
            .zip(&encrypted)
            .find(|(_, e)| e.is_some())
            .context("internal: encrypted archive vanished")?;
        verify_password(b, m, &mut ring)?;
        keys = Some(ring);
    }
    let budget = Budget {
        limit: opts
            .max_bytes
            .or_else(|| free_space(&out))
            .unwrap_or(u64::MAX),
        written: AtomicU64::new(0),
    };
    let mut report = ExtractReport {
        path: b.what.clone(),
        target: out.display().to_string(),
        backup_json: json_dest.display().to_string(),
        archives: Vec::new(),
    };
    // Inner archives are independent: up to two at a time (each is itself a three-thread
    // pipeline), taken in order; after a failure no new one is started.
    let keys = Mutex::new(keys);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Mutex<Option<Result<Extracted>>>> =
        archives.iter().map(|_| Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 2)
        .min(archives.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (Some(m), Some(dest)) = (archives.get(i), targets.get(i)) else {
                        return;
                    };
                    let r = extract_one(b, m, dest, protected, &keys, &budget, opts)
                        .with_context(|| format!("{}: {}", b.what, tarscan::normalise(&m.name)));
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    for slot in results {
        match slot.into_inner().ok().flatten() {
            Some(r) => report.archives.push(r?),
            None if failed.load(Ordering::Relaxed) => {} // not started after a failure
            None => anyhow::bail!("{}: internal: an archive was not extracted", b.what),
        }
    }
    if failed.load(Ordering::Relaxed) {
        anyhow::bail!(
            "{}: internal: an extraction failed without an error",
            b.what
        );
    }
    let bytes = serde_json::to_vec_pretty(meta).context("encoding backup.json")?;
    write_atomic(&json_dest, &bytes, 0o644, opts.force)?;
    Ok(report)
}

/// Check the password on the first encrypted archive (v3: key check; v1/v2: first block).
fn verify_password(b: &Backup, m: &Member, ring: &mut KeyRing) -> Result<()> {
    let mut sec = inner::Section::member(b.reader(), m);
    let mut r = super::securetar::Reader::new(&mut sec, m.size, ring)
        .map_err(|e| anyhow::anyhow!("{}: {}: {e}", b.what, tarscan::normalise(&m.name)))?;
    let mut first = [0u8; 16];
    if let Err(e) = r.read(&mut first)
        && let Some(s @ super::securetar::SecureTarError::NotGzipOrTar(_)) =
            super::securetar::as_securetar(&e)
    {
        anyhow::bail!("{}: {}: {s}", b.what, tarscan::normalise(&m.name));
    }
    Ok(())
}

/// Write `bytes` to `dest` through a temporary name and a rename.
pub fn write_atomic(dest: &Path, bytes: &[u8], mode: u32, force: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if dest.symlink_metadata().is_ok() && !force {
        anyhow::bail!("{}: exists; add --force to replace it", dest.display());
    }
    let tmp = tmp_name(dest, "tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("{}: cannot create", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("{}: cannot rename into place", dest.display()))?;
    Ok(())
}

/// `dir/.name.lifeboat-<what>-<pid>`.
pub fn tmp_name(dest: &Path, what: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.lifeboat-{what}-{}", std::process::id()))
}

/// Put `tmp` in place of `dest`, replacing what is there only when `force`.
pub fn replace(tmp: &Path, dest: &Path, force: bool) -> Result<()> {
    if dest.symlink_metadata().is_ok() {
        if !force {
            anyhow::bail!("{}: exists; add --force to replace it", dest.display());
        }
        let old = tmp_name(dest, "old");
        std::fs::rename(dest, &old)
            .with_context(|| format!("{}: cannot move aside", dest.display()))?;
        std::fs::rename(tmp, dest)
            .with_context(|| format!("{}: cannot rename into place", dest.display()))?;
        let gone = if old.is_dir() && !old.is_symlink() {
            std::fs::remove_dir_all(&old)
        } else {
            std::fs::remove_file(&old)
        };
        gone.with_context(|| format!("{}: cannot remove the old copy", old.display()))?;
    } else {
        std::fs::rename(tmp, dest)
            .with_context(|| format!("{}: cannot rename into place", dest.display()))?;
    }
    Ok(())
}

/// Removes a temporary directory unless disarmed.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// The bytes all archives may write together, and what they wrote so far.
struct Budget {
    limit: u64,
    written: AtomicU64,
}

fn extract_one(
    b: &Backup,
    m: &Member,
    dest: &Path,
    protected: bool,
    keys: &Mutex<Option<KeyRing>>,
    budget: &Budget,
    opts: &Options,
) -> Result<Extracted> {
    let tmp = tmp_name(dest, "tmp");
    if tmp.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("{}: stale, cannot remove", tmp.display()))?;
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
    }
    let mut guard = TmpGuard(Some(tmp.clone()));
    let root: OwnedFd = openat(
        nix::fcntl::AT_FDCWD,
        tmp.as_path(),
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)
    .with_context(|| format!("{}: cannot open", tmp.display()))?;
    let (plain, layers) = {
        let mut ring = keys
            .lock()
            .map_err(|_| anyhow::anyhow!("internal: key ring poisoned"))?;
        inner::open_decrypted(b.reader(), m, protected, ring.as_mut())
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let mut w = Writer {
        root,
        cache: None,
        dirs: Vec::new(),
        buf: vec![0u8; 1 << 20],
        budget,
        ex: Extracted {
            archive: tarscan::normalise(&m.name).to_string(),
            dir: dest.display().to_string(),
            encryption: layers.encryption,
            entries: 0,
            files: 0,
            dirs: 0,
            symlinks: 0,
            hard_links: 0,
            bytes: 0,
            skipped: Vec::new(),
            same_owner: opts.same_owner,
            owner_failures: Vec::new(),
        },
        owner_failed: 0,
    };
    let max_entries = opts.max_entries.unwrap_or(10_000_000);
    let tar_budget = budget.limit.saturating_add(1 << 30);
    let res = std::thread::scope(|s| {
        // Three stages: read + decrypt, inflate, and (here) tar + file writes, so the
        // inflate thread (the slowest stage) never waits on the kernel's write path.
        let piped = super::pipe::spawn(s, plain);
        let inflated = super::pipe::spawn(s, inner::tar_stream_buffered(piped, &layers));
        let stream = Bounded {
            inner: Box::new(inflated),
            left: tar_budget,
        };
        inner::walk(Box::new(stream), max_entries, |e, body| w.entry(e, body))
    });
    let n = res.map_err(|e| anyhow::anyhow!("{}", check::describe_read_error(&e)))?;
    w.ex.entries = n;
    w.finish_dirs()?;
    let listed = w.ex.owner_failures.len() as u64;
    if w.owner_failed > listed {
        w.ex.owner_failures
            .push(format!("… and {} more", w.owner_failed - listed));
    }
    let ex = w.ex;
    drop(w.root);
    replace(&tmp, dest, opts.force)?;
    guard.0 = None;
    Ok(ex)
}

/// Where [`Writer::chown`] applies.
enum Owned<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a str),
}

struct Writer<'b> {
    root: OwnedFd,
    /// The last parent directory opened, by path.
    cache: Option<(Vec<String>, OwnedFd)>,
    /// Directories to give their modes, times (and owners) at the end.
    dirs: Vec<(Vec<String>, u32, u64, u64, u64)>,
    buf: Vec<u8>,
    budget: &'b Budget,
    ex: Extracted,
    /// Ownership failures in all (the first few are in `ex.owner_failures`).
    owner_failed: u64,
}

fn unsafe_err(name: &str, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("member '{name}': {why}; refusing to extract"),
    )
}

fn file_mode(mode: u32, parts: &[String], dir: bool) -> Mode {
    let mut m = mode & 0o755;
    if dir {
        m |= 0o700;
    } else {
        m |= 0o600;
    }
    if sensitive(parts) {
        m &= 0o700;
    }
    Mode::from_bits_truncate(m as nix::libc::mode_t)
}

fn ts(mtime: u64) -> TimeSpec {
    TimeSpec::new(mtime.min(i64::MAX as u64) as i64, 0)
}

/// A header id as a system id, when it fits.
fn ids(uid: u64, gid: u64) -> Option<(Uid, Gid)> {
    Some((
        Uid::from_raw(u32::try_from(uid).ok()?),
        Gid::from_raw(u32::try_from(gid).ok()?),
    ))
}

impl Writer<'_> {
    /// Give `name` in `dir` (not following a symlink), or `fd` when given, the owner
    /// `uid`:`gid`, if ownership is restored. Failures are recorded, not fatal (GNU tar
    /// also extracts onto filesystems without owners and says so).
    fn chown(&mut self, what: &str, at: Owned<'_>, uid: u64, gid: u64) {
        if !self.ex.same_owner {
            return;
        }
        let res = match ids(uid, gid) {
            None => Err(format!(
                "{what}: owner {uid}:{gid} does not fit a 32-bit id"
            )),
            Some((u, g)) => match at {
                Owned::Fd(fd) => fchown(fd, Some(u), Some(g)),
                Owned::At(dir, name) => {
                    fchownat(dir, name, Some(u), Some(g), AtFlags::AT_SYMLINK_NOFOLLOW)
                }
            }
            .map_err(|e| format!("{what}: cannot give it owner {uid}:{gid}: {e}")),
        };
        if let Err(m) = res {
            self.owner_failed += 1;
            if self.ex.owner_failures.len() < MAX_OWNER_WARNINGS {
                self.ex.owner_failures.push(m);
            }
        }
    }

    /// Open the directory holding `parts` (all but the last component), creating missing
    /// directories when `create`; never following a symlink.
    fn parent(&mut self, name: &str, parts: &[String], create: bool) -> io::Result<OwnedFd> {
        let dir = &parts[..parts.len() - 1];
        if let Some((p, fd)) = &self.cache
            && p == dir
        {
            return fd.try_clone();
        }
        let mut cur = self.root.try_clone()?;
        for (i, c) in dir.iter().enumerate() {
            let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
            cur = match openat(cur.as_fd(), c.as_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(cur.as_fd(), c.as_str(), Mode::from_bits_truncate(0o700)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(errno_io(e)),
                    }
                    openat(cur.as_fd(), c.as_str(), flags, Mode::empty()).map_err(errno_io)?
                }
                Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                    return Err(unsafe_err(
                        name,
                        format!(
                            "'{}' is a symlink or a file, and lifeboat does not write through it",
                            dir[..=i].join("/")
                        ),
                    ));
                }
                Err(e) => return Err(errno_io(e)),
            };
        }
        self.cache = Some((dir.to_vec(), cur.try_clone()?));
        Ok(cur)
    }

    /// Remove what is at `name` in `dir` (not a directory), so a later member replaces it.
    fn clear(dir: &OwnedFd, name: &str) -> io::Result<()> {
        match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno_io(e)),
        }
    }

    fn entry(&mut self, e: &inner::Entry, body: &mut dyn Read) -> io::Result<()> {
        let parts = inner::safe_path(&e.raw_name).map_err(|u| unsafe_err(&e.raw_name, u))?;
        if parts.is_empty() {
            return Ok(()); // the archive root "."
        }
        let last = parts[parts.len() - 1].as_str();
        match e.kind {
            EntryKind::Dir => {
                let dir = self.parent(&e.raw_name, &parts, true)?;
                match mkdirat(dir.as_fd(), last, Mode::from_bits_truncate(0o700)) {
                    Ok(()) => self.ex.dirs += 1,
                    Err(Errno::EEXIST) => {
                        let fl = OFlag::O_DIRECTORY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_RDONLY
                            | OFlag::O_CLOEXEC;
                        if openat(dir.as_fd(), last, fl, Mode::empty()).is_err() {
                            return Err(unsafe_err(
                                &e.raw_name,
                                "a directory where a file or symlink already is",
                            ));
                        }
                    }
                    Err(er) => return Err(errno_io(er)),
                }
                self.dirs.push((parts, e.mode, e.mtime, e.uid, e.gid));
            }
            EntryKind::File => {
                let dir = self.parent(&e.raw_name, &parts, true)?;
                let fl = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let fd = match openat(dir.as_fd(), last, fl, Mode::from_bits_truncate(0o600)) {
                    Ok(fd) => fd,
                    Err(Errno::EEXIST) => {
                        Self::clear(&dir, last).map_err(|_| {
                            unsafe_err(&e.raw_name, "a file where a directory already is")
                        })?;
                        openat(dir.as_fd(), last, fl, Mode::from_bits_truncate(0o600))
                            .map_err(errno_io)?
                    }
                    Err(er) => return Err(errno_io(er)),
                };
                let mut f = std::fs::File::from(fd);
                loop {
                    let n = body.read(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    let total = self
                        .budget
                        .written
                        .fetch_add(n as u64, Ordering::Relaxed)
                        .saturating_add(n as u64);
                    if total > self.budget.limit {
                        return Err(io::Error::other(format!(
                            "member '{}': the extracted data passes {} bytes (the free space, or --max-size): a decompression bomb, or not enough room",
                            e.raw_name, self.budget.limit
                        )));
                    }
                    f.write_all(&self.buf[..n])?;
                }
                self.chown(&e.raw_name, Owned::Fd(f.as_fd()), e.uid, e.gid);
                fchmod(f.as_fd(), file_mode(e.mode, &parts, false)).map_err(errno_io)?;
                let t = ts(e.mtime);
                futimens(f.as_fd(), &t, &t).map_err(errno_io)?;
                self.ex.files += 1;
                self.ex.bytes += e.size;
            }
            EntryKind::Symlink => {
                let dir = self.parent(&e.raw_name, &parts, true)?;
                let target = e.link.clone().unwrap_or_default();
                if target.is_empty() {
                    return Err(unsafe_err(&e.raw_name, "symlink without a target"));
                }
                match symlinkat(target.as_str(), dir.as_fd(), last) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        Self::clear(&dir, last).map_err(|_| {
                            unsafe_err(&e.raw_name, "a symlink where a directory already is")
                        })?;
                        symlinkat(target.as_str(), dir.as_fd(), last).map_err(errno_io)?;
                    }
                    Err(er) => return Err(errno_io(er)),
                }
                self.chown(&e.raw_name, Owned::At(dir.as_fd(), last), e.uid, e.gid);
                let t = ts(e.mtime);
                let _ = utimensat(dir.as_fd(), last, &t, &t, UtimensatFlags::NoFollowSymlink);
                self.ex.symlinks += 1;
            }
            EntryKind::HardLink => {
                let link = e.link.clone().unwrap_or_default();
                let tparts = inner::safe_path(&link)
                    .map_err(|u| unsafe_err(&e.raw_name, format!("hard link to '{link}': {u}")))?;
                if tparts.is_empty() {
                    return Err(unsafe_err(&e.raw_name, "hard link to the archive root"));
                }
                let tdir = self.parent(&e.raw_name, &tparts, false)?;
                let dir = self.parent(&e.raw_name, &parts, true)?;
                let tname = tparts[tparts.len() - 1].as_str();
                Self::clear(&dir, last)?;
                linkat(tdir.as_fd(), tname, dir.as_fd(), last, AtFlags::empty()).map_err(|er| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("member '{}': hard link to '{link}' cannot be made ({er}): the target is not in the archive before it", e.raw_name),
                    )
                })?;
                self.ex.hard_links += 1;
            }
            EntryKind::Special => self
                .ex
                .skipped
                .push(format!("{}: device or FIFO, not created", e.raw_name)),
            EntryKind::Other(t) => self.ex.skipped.push(format!(
                "{}: member type '{}' not extracted",
                e.raw_name, t as char
            )),
        }
        Ok(())
    }

    /// Give directories their modes and times, deepest first (a read-only directory must not
    /// be closed before what is inside it is written).
    fn finish_dirs(&mut self) -> Result<()> {
        self.cache = None;
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        for (parts, mode, mtime, uid, gid) in dirs {
            let name = parts.join("/");
            let parent = self.parent(&name, &parts, false)?;
            let fl = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
            let fd = openat(
                parent.as_fd(),
                parts[parts.len() - 1].as_str(),
                fl,
                Mode::empty(),
            )
            .map_err(errno_io)
            .with_context(|| format!("{name}: cannot reopen"))?;
            self.chown(&name, Owned::Fd(fd.as_fd()), uid, gid);
            fchmod(fd.as_fd(), file_mode(mode, &parts, true)).map_err(errno_io)?;
            let t = ts(mtime);
            futimens(fd.as_fd(), &t, &t).map_err(errno_io)?;
            self.cache = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_owner_only() {
        let p = |s: &str| inner::safe_path(s).unwrap();
        assert!(sensitive(&p("data/.storage/auth")));
        assert!(sensitive(&p("data/secrets.yaml")));
        assert!(sensitive(&p("addon.json")));
        assert!(!sensitive(&p("data/configuration.yaml")));
        assert_eq!(
            file_mode(0o644, &p("data/.storage/auth"), false).bits() & 0o777,
            0o600
        );
        assert_eq!(
            file_mode(0o755, &p("data/.storage"), true).bits() & 0o777,
            0o700
        );
        assert_eq!(
            file_mode(0o4777, &p("data/x"), false).bits() & 0o7777,
            0o755
        );
        assert_eq!(file_mode(0o000, &p("data/x"), false).bits() & 0o777, 0o600);
    }
}
