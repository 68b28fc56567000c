//! Reading a disk that may be dying: positional reads into page-aligned buffers, `O_DIRECT`
//! on block devices (so the page cache neither hides nor repeats what the card returns), an
//! optional per-read timeout, reopening the device when it drops off the bus (under its old
//! name, or under a new one: a whole disk is found again by its sysfs identity and its first
//! 64 KiB), and an optional read-rate limit.
//!
//! A read either fills the whole buffer or fails. Failures are [`ReadError::Media`] (this
//! area is bad: the caller marks it and moves on) or [`ReadError::Gone`] (the device is gone
//! and did not come back: the caller saves its state and stops).
//!
//! Timeouts: Linux cannot cancel a blocking read, so with a timeout each read runs on a
//! worker thread; a read that has not returned in time is abandoned with its thread and
//! buffer, the device is reopened and a new worker takes over. No `unsafe` here: buffers are
//! aligned by offsetting into an ordinary `Vec`.

use crate::device::SysRoot;
use crate::device::identity::{DiskIdentity, disk_identity, disks_like};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Alignment of read buffers: a page, enough for every logical sector size up to 4 KiB.
pub const ALIGN: usize = 4096;

/// A byte buffer whose data starts on an [`ALIGN`] boundary, as `O_DIRECT` needs.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    v: Vec<u8>,
    off: usize,
    cap: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        let v = vec![0u8; cap + ALIGN];
        let off = v.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { v, off, cap }
    }
    pub fn capacity(&self) -> usize {
        self.cap
    }
    /// The first `len` bytes (clamped to the capacity).
    pub fn get(&self, len: usize) -> &[u8] {
        let len = len.min(self.cap);
        &self.v[self.off..self.off + len]
    }
    /// The first `len` bytes, writable.
    pub fn get_mut(&mut self, len: usize) -> &mut [u8] {
        let len = len.min(self.cap);
        &mut self.v[self.off..self.off + len]
    }
}

/// How to read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Use `O_DIRECT` (block devices only; silently off for files).
    pub direct: bool,
    /// Give up on a single read after this long.
    pub timeout: Option<Duration>,
    /// Bytes per second at most (averaged over about a second).
    pub max_rate: Option<u64>,
    /// How long to wait for a vanished device to come back.
    pub reopen_wait: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            direct: true,
            timeout: None,
            max_rate: None,
            reopen_wait: Duration::from_secs(30),
        }
    }
}

/// Why a read failed.
#[derive(Debug)]
pub enum ReadError {
    /// The area could not be read (I/O error, timeout): mark it and go on.
    Media(io::Error),
    /// The device disappeared and could not be reopened.
    Gone(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Media(e) => write!(f, "{e}"),
            ReadError::Gone(s) => f.write_str(s),
        }
    }
}

struct Job {
    file: Arc<File>,
    off: u64,
    len: usize,
    buf: AlignedBuf,
}

struct Worker {
    tx: SyncSender<Job>,
    rx: Receiver<(AlignedBuf, io::Result<()>)>,
}

impl Worker {
    fn spawn() -> io::Result<Worker> {
        let (tx, jrx) = sync_channel::<Job>(1);
        let (rtx, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("lifeboat-read".into())
            .spawn(move || {
                for mut j in jrx {
                    let r = read_full(&j.file, j.buf.get_mut(j.len), j.off);
                    if rtx.send((j.buf, r)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Worker { tx, rx })
    }
}

fn read_full(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("end of device at byte {}", off + done as u64),
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Errors that mean the device itself went away (USB reset, card pulled).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::ENODEV
            || code == nix::libc::ENXIO
            || code == nix::libc::ENOMEDIUM
            || code == nix::libc::EBADF
            || code == nix::libc::ESHUTDOWN
    )
}

struct Limiter {
    rate: u64,
    tokens: f64,
    last: Instant,
}

impl Limiter {
    fn take(&mut self, n: usize) {
        let now = Instant::now();
        self.tokens = (self.tokens
            + now.duration_since(self.last).as_secs_f64() * self.rate as f64)
            .min(self.rate as f64);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            std::thread::sleep(Duration::from_secs_f64(-self.tokens / self.rate as f64));
        }
    }
}

/// Counters of what happened while reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderStats {
    pub timeouts: u64,
    pub reopens: u64,
}

/// A source disk or image opened for rescue reading.
pub struct SourceReader {
    path: PathBuf,
    size: u64,
    sector: u32,
    direct: bool,
    file: Arc<File>,
    worker: Option<Worker>,
    opts: ReadOptions,
    limiter: Option<Limiter>,
    /// Sectors read fine earlier (the first and the latest good read): probed after a failed
    /// read to tell a bad area from a device that stopped answering.
    first_good: Option<u64>,
    last_good: Option<u64>,
    pub stats: ReaderStats,
    /// How to recognise the disk under another name (whole block devices whose first bytes
    /// read at open).
    follow: Option<Follow>,
    /// Device paths the source was found under after it dropped off the bus, in order.
    pub came_back_as: Vec<PathBuf>,
    /// Disks that looked like the source when more than one did (then none is trusted).
    lookalikes: Vec<String>,
}

/// The source disk's identity: its kernel name and sysfs facts at open, and the SHA-256 of its
/// first bytes as the first good read at offset 0 returned them (no extra read at open: a
/// dying card may hang there).
struct Follow {
    name: String,
    id: DiskIdentity,
    head: Option<(usize, [u8; 32])>,
}

/// At most this many bytes at the start of the disk are compared to recognise it: the
/// partition tables (MBR, GPT header and entries with the disk's GUID) and then some.
const HEAD_PROBE: usize = 64 << 10;

impl Follow {
    /// For a whole block device opened as `file`: None for a partition or a file.
    fn of(file: &File, size: u64) -> Option<Follow> {
        let root = SysRoot::host();
        let dev = crate::sys::file_device_number(file).ok()?;
        if root
            .join(&format!("sys/dev/block/{dev}/partition"))
            .exists()
        {
            return None;
        }
        let name = crate::device::discover::disk_name_of(&root, dev)?;
        let id = disk_identity(&root, &name).filter(|id| id.size == size)?;
        Some(Follow {
            name,
            id,
            head: None,
        })
    }
}

fn open_file(path: &Path, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true);
    if direct {
        o.custom_flags(nix::libc::O_DIRECT);
    }
    o.open(path)
}

impl SourceReader {
    /// Open `path` (of `size` bytes, `sector`-byte logical sectors). `O_DIRECT` is used when
    /// asked and `is_device`; if the device refuses it, buffered reads are used instead and
    /// [`SourceReader::direct`] says so.
    pub fn open(
        path: &Path,
        size: u64,
        sector: u32,
        is_device: bool,
        opts: ReadOptions,
    ) -> anyhow::Result<Self> {
        let want_direct = opts.direct && is_device;
        let (file, direct) = match open_file(path, want_direct) {
            Ok(f) => (f, want_direct),
            Err(_) if want_direct => (open_file(path, false)?, false),
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("{}: cannot open for reading", path.display())));
            }
        };
        let worker = match opts.timeout {
            Some(_) => Some(Worker::spawn()?),
            None => None,
        };
        let follow = if is_device {
            Follow::of(&file, size)
        } else {
            None
        };
        let limiter = opts.max_rate.filter(|&r| r > 0).map(|rate| Limiter {
            rate,
            tokens: rate as f64,
            last: Instant::now(),
        });
        Ok(SourceReader {
            path: path.to_path_buf(),
            size,
            sector: sector.max(512),
            direct,
            file: Arc::new(file),
            worker,
            opts,
            limiter,
            first_good: None,
            last_good: None,
            stats: ReaderStats::default(),
            follow,
            came_back_as: Vec::new(),
            lookalikes: Vec::new(),
        })
    }

    /// Whether reads bypass the page cache.
    pub fn direct(&self) -> bool {
        self.direct
    }
    /// Logical sector size used for alignment and scraping.
    pub fn sector(&self) -> u32 {
        self.sector
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reopen(&mut self) -> Result<(), ReadError> {
        let deadline = Instant::now() + self.opts.reopen_wait;
        self.release();
        loop {
            if let Some(f) = self.open_again() {
                self.file = f;
                self.stats.reopens += 1;
                if self.opts.timeout.is_some() {
                    self.worker = Worker::spawn().ok();
                }
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ReadError::Gone(format!(
                    "{}: the device went away and did not come back (same size{}) within {} s; \
                     reconnect it and run again with --resume{}",
                    self.path.display(),
                    if self.follow.is_some() {
                        ", same identity and first 64 KiB, under any name"
                    } else {
                        ""
                    },
                    self.opts.reopen_wait.as_secs(),
                    self.lookalikes_note()
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Close the source (a placeholder takes its descriptor's place), so that a device that
    /// re-enumerates can get its old name back: the kernel keeps a name while it is open.
    fn release(&mut self) {
        if let Ok(f) = File::open("/dev/null") {
            self.file = Arc::new(f);
        }
    }

    /// The source again: under its path when that opens with the same size and its first
    /// bytes match; else (whole disks) the one disk that has its identity and first bytes
    /// under another name — then `path` becomes that name; else its path when it opens with
    /// the same size but its first bytes do not read (the caller's probe decides).
    fn open_again(&mut self) -> Option<Arc<File>> {
        let mut maybe = None;
        if let Ok(f) = open_file(&self.path, self.direct).map(Arc::new) {
            let size = crate::sys::size_bytes(&f)
                .or_else(|_| f.metadata().map(|m| m.len()))
                .unwrap_or(0);
            if size == self.size {
                match self.head_check(&f) {
                    Some(true) => return Some(f),
                    // Another card that got the name.
                    Some(false) => {}
                    None => maybe = Some(f),
                }
            }
        }
        let Some(fl) = self.follow.as_ref().filter(|fl| fl.head.is_some()) else {
            return maybe;
        };
        let mut found: Vec<(PathBuf, Arc<File>)> = Vec::new();
        let mut names = Vec::new();
        for name in disks_like(&SysRoot::host(), &fl.id) {
            if name == fl.name {
                continue;
            }
            let p = PathBuf::from("/dev").join(&name);
            if let Ok(f) = open_file(&p, self.direct).map(Arc::new)
                && self.head_check(&f) == Some(true)
            {
                names.push(p.display().to_string());
                found.push((p, f));
            }
        }
        if found.len() == 1
            && let Some((p, f)) = found.pop()
        {
            self.came_back_as.push(p.clone());
            self.path = p;
            self.lookalikes.clear();
            return Some(f);
        }
        self.lookalikes = names;
        maybe
    }

    /// Whether `f` starts with the source's first bytes: None when they are not known, do
    /// not read, or (with `--timeout`) take longer than the timeout — the read is then
    /// abandoned on its own thread, as a stuck read of the copy is.
    fn head_check(&self, f: &Arc<File>) -> Option<bool> {
        let (len, sha) = self.follow.as_ref()?.head?;
        let mut buf = AlignedBuf::new(len);
        let b = match self.opts.timeout {
            None => {
                read_full(f, buf.get_mut(len), 0).ok()?;
                buf
            }
            Some(t) => {
                let w = Worker::spawn().ok()?;
                w.tx.send(Job {
                    file: Arc::clone(f),
                    off: 0,
                    len,
                    buf,
                })
                .ok()?;
                let (b, r) = w.rx.recv_timeout(t).ok()?;
                r.ok()?;
                b
            }
        };
        Some(Sha256::digest(b.get(len)).as_slice() == sha)
    }

    fn lookalikes_note(&self) -> String {
        if self.lookalikes.len() > 1 {
            format!(
                ". Several disks look like it ({}): lifeboat will not guess; detach all but \
                 the source",
                self.lookalikes.join(", ")
            )
        } else {
            String::new()
        }
    }

    fn read_once(&mut self, buf: &mut AlignedBuf, len: usize, off: u64) -> io::Result<()> {
        let (Some(w), Some(t)) = (&self.worker, self.opts.timeout) else {
            return read_full(&self.file, buf.get_mut(len), off);
        };
        let cap = buf.capacity();
        let job = Job {
            file: Arc::clone(&self.file),
            off,
            len,
            buf: std::mem::take(buf),
        };
        if w.tx.send(job).is_err() {
            *buf = AlignedBuf::new(cap);
            return Err(io::Error::other("read worker stopped"));
        }
        match w.rx.recv_timeout(t) {
            Ok((b, r)) => {
                *buf = b;
                r
            }
            Err(_) => {
                // Abandon the stuck read with its thread and buffer.
                self.stats.timeouts += 1;
                *buf = AlignedBuf::new(cap);
                self.worker = None;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "read of {len} bytes at {off} took longer than {} ms",
                        t.as_millis()
                    ),
                ))
            }
        }
    }

    /// Whether the device still reads one of the sectors it read before.
    fn answers(&mut self) -> bool {
        let sec = self.sector as usize;
        let mut probe = AlignedBuf::new(sec);
        let at: Vec<u64> = [self.last_good, self.first_good]
            .into_iter()
            .flatten()
            .collect();
        at.into_iter().any(|off| {
            // A probe that timed out abandoned its worker: the next one needs a new worker,
            // or it would block without a timeout.
            if self.opts.timeout.is_some() && self.worker.is_none() {
                self.worker = Worker::spawn().ok();
            }
            self.read_once(&mut probe, sec, off).is_ok()
        })
    }

    /// After a failed read: if the device no longer reads even the sectors it read before,
    /// it has stopped answering (a card reader that dropped off the bus and re-enumerates, a
    /// reset): wait for it, reopening it, until it reads them again — then the failed read is
    /// not a bad area. Returns Ok(true) when the device came back, Ok(false) when it answers
    /// (the failure is the medium's), Err when it did not come back within `reopen_wait`.
    fn reconnect_if_dropped(&mut self, failed_at: u64) -> Result<bool, ReadError> {
        if self.last_good.is_none() || self.last_good == Some(failed_at) || self.answers() {
            return Ok(false);
        }
        let deadline = Instant::now() + self.opts.reopen_wait;
        self.release();
        loop {
            std::thread::sleep(Duration::from_millis(250));
            if let Some(f) = self.open_again() {
                self.file = f;
                if self.opts.timeout.is_some() && self.worker.is_none() {
                    self.worker = Worker::spawn().ok();
                }
                if self.answers() {
                    self.stats.reopens += 1;
                    return Ok(true);
                }
            }
            if Instant::now() >= deadline {
                return Err(ReadError::Gone(format!(
                    "{}: the device stopped answering (even sectors it read before fail) and did \
                     not recover within {} s; reconnect it and run again with --resume{}",
                    self.path.display(),
                    self.opts.reopen_wait.as_secs(),
                    self.lookalikes_note()
                )));
            }
        }
    }

    /// Read exactly `len` bytes at `off` into `buf`. `off` and `len` must be multiples of
    /// the sector size (the end of the source is allowed).
    ///
    /// A failed read is retried once on a reopened device when the device went away (the
    /// kernel says so, or a read timed out and the device was reopened) or stopped answering
    /// altogether (see [`SourceReader::reconnect_if_dropped`]); only a failure the device
    /// still answers around is [`ReadError::Media`].
    pub fn read(&mut self, buf: &mut AlignedBuf, len: usize, off: u64) -> Result<(), ReadError> {
        let r = self.read_inner(buf, len, off);
        match &r {
            Ok(()) => {
                self.last_good = Some(off);
                self.first_good.get_or_insert(off);
                if off == 0
                    && let Some(fl) = self.follow.as_mut()
                    && fl.head.is_none()
                {
                    let n = len.min(HEAD_PROBE);
                    fl.head = Some((n, Sha256::digest(&buf.get(n)[..n]).into()));
                }
            }
            Err(ReadError::Media(e)) if e.kind() != io::ErrorKind::InvalidInput => {
                if self.reconnect_if_dropped(off)? {
                    let again = self.read_inner(buf, len, off);
                    if again.is_ok() {
                        self.last_good = Some(off);
                    }
                    return again;
                }
            }
            Err(_) => {}
        }
        r
    }

    fn read_inner(&mut self, buf: &mut AlignedBuf, len: usize, off: u64) -> Result<(), ReadError> {
        if len > buf.capacity() || off.saturating_add(len as u64) > self.size {
            return Err(ReadError::Media(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("read of {len} bytes at {off} outside the buffer or the source"),
            )));
        }
        if let Some(l) = &mut self.limiter {
            l.take(len);
        }
        match self.read_once(buf, len, off) {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) || e.kind() == io::ErrorKind::TimedOut => {
                self.reopen()?;
                if e.kind() == io::ErrorKind::TimedOut {
                    return Err(ReadError::Media(e));
                }
                self.read_once(buf, len, off).map_err(ReadError::Media)
            }
            Err(e) => Err(ReadError::Media(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers() {
        for cap in [512, 4096, 1 << 20, 3 * 512] {
            let mut b = AlignedBuf::new(cap);
            assert_eq!(b.get(cap).as_ptr() as usize % ALIGN, 0);
            assert_eq!(b.get_mut(usize::MAX).len(), cap);
        }
    }

    #[test]
    fn reads_a_file_and_fails_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let opts = ReadOptions {
            timeout: Some(Duration::from_secs(5)),
            max_rate: Some(100 << 20),
            ..Default::default()
        };
        let mut r = SourceReader::open(&p, 10_000, 512, false, opts).unwrap();
        assert!(!r.direct());
        let mut b = AlignedBuf::new(4096);
        r.read(&mut b, 4096, 1024).unwrap();
        assert_eq!(b.get(4096), &data[1024..5120]);
        r.read(&mut b, 10_000 - 8192, 8192).unwrap();
        assert_eq!(b.get(1808), &data[8192..]);
        assert!(matches!(
            r.read(&mut b, 4096, 8192),
            Err(ReadError::Media(_))
        ));
    }
}
