//! The flash engine: streams an image onto an opened target disk and proves it arrived.
//!
//! Order, so that a half-written disk never looks like a bootable one:
//! 1. the first MiB and the last MiB of the target are zeroed (no stale GPT, primary or backup,
//!    survives) and synced;
//! 2. everything except the first MiB (kept in memory) goes to two writer threads (4 MiB
//!    aligned `pwrite`s, two in flight, `O_DIRECT` when the device takes it, SHA-256 of every
//!    piece written outside the bmap ranges that have one). A raw image with a bmap is read
//!    by two lane threads at once (`pread`, each reading and checking the SHA-256 of its
//!    share of the ranges, so hashing uses both cores); any other image is one stream, read
//!    (decompressed, unmapped ranges skipped) by one thread and hashed (bmap ranges, or the
//!    whole image) by another;
//! 3. sync, `BLKFLSBUF`, then the geometry fit (backup GPT to the disk's end, `--grow`) through
//!    [`fit`], reading an overlay of the in-memory first MiB over the target;
//! 4. every written unit (a bmap range or a piece) is read back with `O_DIRECT` by three
//!    threads and compared byte for byte with a raw image (4 MiB pieces, any thread), else by
//!    SHA-256 (the bmap's checksum or the piece's own; one thread per unit, with a helper
//!    reading the next piece while it hashes); a mismatching
//!    piece is located to the sector, rewritten from the image and re-read up to `retries`
//!    times;
//! 5. the first MiB is written last, synced and read back; `BLKRRPART` (and `BLKPG` on kernels
//!    without a parser for the table) makes the kernel show the new partitions.
//!
//! On any failure (write error, corrupt image, read-back failure, interruption) [`flash`] wipes
//! what could look like a partition table (first MiB, last MiB, the MiB before the image's end)
//! and says so in its error: the disk is then blank, never half-valid.

use crate::imaging::pipeline::RangeHasher;
use crate::imaging::ranges::Extent;
use crate::imaging::reader::AlignedBuf;
use crate::imaging::rescue::Progress;
use crate::io::ReadAt;
use crate::table::PartitionTable;
use crate::verify::bmap::hex;
use crate::verify::input::ImageInput;
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Bytes per write (and per read-back read).
pub const CHUNK: usize = 4 << 20;
/// The first MiB: written last.
pub const HEAD: u64 = 1 << 20;
/// Chunks queued between the image reader and the writers.
const QUEUE: usize = 3;
/// Buffers in circulation.
const POOL: usize = 10;
/// Writes in flight at once.
const WRITERS: usize = 2;
/// Reader threads for a raw image with a bmap (each reads and hashes its share of the
/// ranges: SHA-256 on two cores).
const LANES: usize = 2;
/// Read-back reads in flight at once (each thread compares what it read while the others
/// wait for the device).
const READERS: usize = 3;

/// The disk being flashed: a write descriptor opened `O_EXCL` (and `O_DIRECT` when the device
/// takes it), an `O_DIRECT` read descriptor for the read-back and a buffered one for the
/// geometry overlay.
pub struct Target {
    pub path: PathBuf,
    /// Kernel name (`sdb`, `loop3`) for sysfs, None for a regular file (engine tests).
    pub sys_name: Option<String>,
    writer: File,
    reader: File,
    plain: File,
    pub size: u64,
    /// Logical sector size: the unit of alignment.
    pub sector: u32,
    direct: bool,
    is_block: bool,
}

fn o_direct() -> i32 {
    nix::fcntl::OFlag::O_DIRECT.bits()
}
fn o_excl() -> i32 {
    nix::fcntl::OFlag::O_EXCL.bits()
}

impl Target {
    /// Open `path` for writing, exclusively (`O_EXCL`: the kernel refuses when any partition
    /// is mounted or held). A block device's size and sector size come from ioctls.
    pub fn open(path: &Path, sys_name: Option<String>) -> Result<Self> {
        let name = path.display();
        let open_w = |extra: i32| {
            OpenOptions::new()
                .write(true)
                .custom_flags(o_excl() | extra)
                .open(path)
        };
        let (writer, direct) = match open_w(o_direct()) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => (
                open_w(0).with_context(|| format!("{name}: cannot open for writing"))?,
                false,
            ),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                return Err(e).with_context(|| {
                    format!(
                        "{name}: cannot open exclusively: the disk or one of its partitions is in \
                         use (mounted, swap, held by dm/md/LVM, or opened by another program)"
                    )
                });
            }
            Err(e) => {
                return Err(e).with_context(|| format!("{name}: cannot open for writing"));
            }
        };
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(o_direct())
            .open(path)
            .or_else(|_| File::open(path))
            .with_context(|| format!("{name}: cannot open for reading back"))?;
        let plain = File::open(path).with_context(|| format!("{name}: cannot open for reading"))?;
        let meta = writer
            .metadata()
            .with_context(|| format!("{name}: cannot stat"))?;
        let is_block = meta.file_type().is_block_device();
        let (size, sector) = if is_block {
            (
                crate::sys::size_bytes(&writer)
                    .with_context(|| format!("{name}: cannot read the size"))?,
                crate::sys::logical_sector_size(&writer)
                    .with_context(|| format!("{name}: cannot read the sector size"))?,
            )
        } else {
            (meta.len(), 512)
        };
        Ok(Target {
            path: path.to_path_buf(),
            sys_name,
            writer,
            reader,
            plain,
            size,
            sector,
            direct,
            is_block,
        })
    }

    /// The device number of the node actually opened (to compare with discovery's).
    pub fn device_number(&self) -> io::Result<crate::sys::DevNum> {
        crate::sys::file_device_number(&self.writer)
    }

    fn s(&self) -> u64 {
        u64::from(self.sector.max(512))
    }

    /// Write `data` at `off`. Unaligned edges (an image whose size is not a multiple of the
    /// sector size) are padded with what the disk holds there (read-modify-write of the edge
    /// sectors) so the write stays sector-aligned.
    fn write_at(&self, data: &[u8], off: u64) -> Result<()> {
        let s = self.s();
        let aligned = off.is_multiple_of(s)
            && (data.len() as u64).is_multiple_of(s)
            && (data.as_ptr() as usize).is_multiple_of(crate::imaging::reader::ALIGN);
        if !self.direct || aligned {
            return self.pwrite_all(data, off);
        }
        let a = off - off % s;
        let end = off + data.len() as u64;
        let e = end.div_ceil(s) * s;
        let n = (e - a) as usize;
        let su = s as usize;
        let mut scratch = AlignedBuf::new(n);
        if a < off {
            let first = self.read_direct(a, su)?;
            scratch.get_mut(n)[..su].copy_from_slice(&first);
        }
        // The last sector, unless it is the first one and was just read.
        if e > end && !(a < off && e - s == a) {
            let last = self.read_direct(e - s, su)?;
            scratch.get_mut(n)[n - su..].copy_from_slice(&last);
        }
        let at = (off - a) as usize;
        scratch.get_mut(n)[at..at + data.len()].copy_from_slice(data);
        self.pwrite_all(scratch.get(n), a)
    }

    fn pwrite_all(&self, mut data: &[u8], mut off: u64) -> Result<()> {
        while !data.is_empty() {
            match self.writer.write_at(data, off) {
                Ok(0) => bail!(
                    "{}: the device took no more bytes at byte {off} (is it smaller than it says?)",
                    self.path.display()
                ),
                Ok(n) => {
                    data = &data[n..];
                    off += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let hint = match e.raw_os_error() {
                        Some(nix::libc::EPERM) | Some(nix::libc::EROFS) => {
                            " (the device is read-only: write-protect switch?)"
                        }
                        Some(nix::libc::ENOSPC) => " (past the end of the device)",
                        _ => "",
                    };
                    return Err(e).with_context(|| {
                        format!("{}: write error at byte {off}{hint}", self.path.display())
                    });
                }
            }
        }
        Ok(())
    }

    /// Read `len` bytes at `off` from the medium (`O_DIRECT`), returned in a fresh buffer
    /// view. Used for edges and small reads.
    fn read_direct(&self, off: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = AlignedBuf::new(len + 2 * self.s() as usize);
        Ok(self.read_into(&mut buf, off, len)?.to_vec())
    }

    /// Read `len` bytes at `off` into `buf` through a sector-aligned window.
    fn read_into<'b>(&self, buf: &'b mut AlignedBuf, off: u64, len: usize) -> Result<&'b [u8]> {
        let (st, n) = self.fill_window(buf, off, len)?;
        Ok(&buf.get(n)[st..st + len])
    }

    /// Fill `buf` with the sector-aligned window around `[off, off+len)`; returns where the
    /// bytes start in it and the window's length.
    fn fill_window(&self, buf: &mut AlignedBuf, off: u64, len: usize) -> Result<(usize, usize)> {
        let s = self.s();
        let a = off - off % s;
        let e = ((off + len as u64).div_ceil(s) * s).min(self.size.max(off + len as u64));
        let n = (e - a) as usize;
        if buf.capacity() < n {
            *buf = AlignedBuf::new(n);
        }
        let b = buf.get_mut(n);
        let mut got = 0;
        while got < n {
            match self.reader.read_at(&mut b[got..], a + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{}: read error at byte {} while reading back",
                            self.path.display(),
                            a + got as u64
                        )
                    });
                }
            }
        }
        let st = (off - a) as usize;
        if got < st + len {
            bail!(
                "{}: the device ended at byte {} while reading back byte {}",
                self.path.display(),
                a + got as u64,
                off + len as u64
            );
        }
        Ok((st, n))
    }

    /// Data on the medium, then the kernel's cache of the device dropped.
    fn sync(&self) -> Result<()> {
        self.writer
            .sync_all()
            .with_context(|| format!("{}: flushing the writes failed", self.path.display()))?;
        if self.is_block {
            crate::sys::flush_buffers(&self.writer).with_context(|| {
                format!("{}: cannot drop the cached blocks", self.path.display())
            })?;
        }
        Ok(())
    }

    /// Zero `[off, off+len)` (clamped to the device).
    fn zero(&self, off: u64, len: u64) -> Result<()> {
        let s = self.s();
        let a = (off - off % s).min(self.size);
        let e = (off.saturating_add(len))
            .div_ceil(s)
            .saturating_mul(s)
            .min(self.size);
        if e <= a {
            return Ok(());
        }
        let buf = AlignedBuf::new(HEAD as usize);
        let mut p = a;
        while p < e {
            let n = (e - p).min(HEAD) as usize;
            self.pwrite_all(buf.get(n), p)?;
            p += n as u64;
        }
        Ok(())
    }
}

/// One piece written: where, and the SHA-256 of the bytes.
#[derive(Debug, Clone, Copy)]
struct Unit {
    off: u64,
    len: u64,
    sha: [u8; 32],
    /// The bytes written are the image's own at this offset (not patched by the fit): a raw
    /// image can then be compared byte for byte on read-back instead of hashed again.
    image_bytes: bool,
}

/// A range that read back different from what was written.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadbackMismatch {
    /// Byte offset on the disk and length of the differing bytes (to the sector).
    pub offset: u64,
    pub length: u64,
    pub partition: Option<u32>,
    /// GPT name (`hassos-data`…) when the partition has one.
    pub partition_name: Option<String>,
    /// Rewrites tried for it.
    pub rewrites: u32,
    /// True when a rewrite made it read back right.
    pub fixed: bool,
}

/// A partition as the kernel shows it after the flash.
#[derive(Debug, Clone, Serialize)]
pub struct KernelPartition {
    pub name: String,
    pub number: u32,
    /// Start and size in bytes.
    pub start: u64,
    pub size: u64,
}

/// Seconds spent per phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub prepare_s: f64,
    pub write_s: f64,
    pub fit_s: f64,
    pub readback_s: f64,
    pub finish_s: f64,
    pub total_s: f64,
}

/// What a finished flash did.
#[derive(Debug, Clone, Serialize)]
pub struct FlashReport {
    pub image_size: u64,
    /// SHA-256 of the whole (decompressed) image, when it was read whole (no bmap).
    pub image_sha256: Option<String>,
    /// bmap ranges whose SHA-256 was checked while streaming.
    pub bmap_ranges_checked: usize,
    /// Bytes written (image data, fit writes and the first MiB; not the initial zeroing).
    pub bytes_written: u64,
    /// Pieces written and read back.
    pub pieces: usize,
    /// Bytes read back and compared.
    pub bytes_verified: u64,
    pub mismatches: Vec<ReadbackMismatch>,
    /// Geometry fit: what was changed (backup GPT moved, partition grown…).
    pub fit_notes: Vec<String>,
    pub fit_writes: usize,
    /// Partitions the kernel shows after the flash.
    pub partitions: Vec<KernelPartition>,
    /// How the kernel learnt them (`BLKRRPART`, or `BLKPG` when it has no parser for the table).
    pub partitions_from: String,
    pub direct_io: bool,
    pub timings: Timings,
}

/// What to flash and how.
pub struct Job<'a> {
    /// The image, positioned just after `head`.
    pub input: ImageInput,
    /// The image's first bytes: min(1 MiB, image size).
    pub head: Vec<u8>,
    /// Mapped byte ranges with their SHA-256 (hex) from the bmap; None: write everything.
    pub map: Option<Vec<(Extent, Option<String>)>>,
    /// Size of the image when known before reading it (bmap, raw file).
    pub image_size: Option<u64>,
    pub grow: bool,
    pub retries: u32,
    pub stop: &'a AtomicBool,
    pub progress: &'a Progress,
    pub warn: &'a mut dyn FnMut(&str),
}

/// Flash the image onto `target`. On failure the target's partition tables are wiped and
/// the error says so.
pub fn flash(job: Job<'_>, target: &Target) -> Result<FlashReport> {
    let image_path = job.input.path.clone();
    let known_end = job.image_size;
    let mut reached = 0u64;
    match run(job, target, &image_path, &mut reached) {
        Ok(r) => Ok(r),
        Err(e) => {
            let end = known_end.unwrap_or(reached).max(reached);
            match wipe(target, end) {
                Ok(()) => Err(e.context(format!(
                    "{}: flash failed; the disk is now blank: its partition tables were wiped \
                     (first and last MiB zeroed), so nothing will try to boot a half-written \
                     card. Fix the cause and flash again",
                    target.path.display()
                ))),
                Err(w) => Err(e.context(format!(
                    "{}: flash failed, and wiping its partition tables failed too ({w:#}): do \
                     not boot from it; flash again or wipe it (`wipefs -a`)",
                    target.path.display()
                ))),
            }
        }
    }
}

/// Zero the first MiB, the last MiB and the MiB before the image's end (its backup GPT when
/// the disk is larger), then let the kernel forget the partitions.
fn wipe(t: &Target, image_end: u64) -> Result<()> {
    t.zero(0, HEAD)?;
    t.zero(t.size.saturating_sub(HEAD), HEAD)?;
    if image_end > HEAD && image_end < t.size {
        let e = image_end.div_ceil(4096) * 4096;
        t.zero(e.saturating_sub(HEAD), HEAD)?;
    }
    t.sync()?;
    if t.is_block {
        let _ =
            crate::sys::reread_partition_table_retrying(&t.writer, 5, Duration::from_millis(200));
    }
    Ok(())
}

/// A chunk travelling from the reader thread to the writer.
struct Chunk {
    off: u64,
    len: usize,
    buf: AlignedBuf,
}

/// What the reader and hash threads found at the end.
struct ReaderEnd {
    /// One past the last image byte seen.
    end: u64,
    image_sha256: Option<String>,
    bmap_checked: usize,
}

fn run(job: Job<'_>, t: &Target, image_path: &Path, reached: &mut u64) -> Result<FlashReport> {
    let t0 = Instant::now();
    let mut timings = Timings::default();
    let Job {
        mut input,
        head,
        map,
        image_size,
        grow,
        retries,
        stop,
        progress,
        warn,
    } = job;
    let raw = input.format == "raw";
    let interrupted = || anyhow!("interrupted (Ctrl-C or a termination signal)");

    // 1. No stale table anywhere: zero the first and the last MiB.
    progress.phase("prepare", 2 * HEAD);
    t.zero(0, HEAD)?;
    t.zero(t.size.saturating_sub(HEAD), HEAD)?;
    t.sync()?;
    timings.prepare_s = secs(t0);

    // 2. Stream everything but the first MiB.
    let t1 = Instant::now();
    let total = match &map {
        Some(m) => m
            .iter()
            .map(|(e, _)| e.end().min(t.size).saturating_sub(e.start.max(HEAD)))
            .sum(),
        None => image_size.unwrap_or(0).saturating_sub(HEAD),
    };
    progress.phase("write", total);
    let (tx, rx) = sync_channel::<Chunk>(QUEUE);
    let (back_tx, back_rx) = sync_channel::<AlignedBuf>(POOL + 1);
    for _ in 0..POOL {
        let _ = back_tx.send(AlignedBuf::new(CHUNK));
    }
    let want_whole = map.is_none();
    // bmap ranges whose SHA-256 stands for what is written: wholly past the first MiB and on
    // the disk.
    let checked: Vec<(Extent, [u8; 32])> = map
        .iter()
        .flatten()
        .filter(|(e, _)| e.start >= HEAD && e.end() <= t.size && e.len > 0)
        .filter_map(|(e, c)| c.as_deref().and_then(unhex32).map(|h| (*e, h)))
        .collect();
    input.set_hash_stored(false);
    let target_size = t.size;
    let stop_r: &AtomicBool = stop;
    let abort = AtomicBool::new(false);
    let abort_r = &abort;
    let head_len = head.len();
    // A raw image with a bmap is read by LANES threads at once (pread, any order), each
    // hashing its share of the bmap ranges; anything else is one stream, read by one thread
    // and hashed by another.
    let lanes = match (&map, raw) {
        (Some(m), true) if head_len as u64 >= HEAD => Some(plan_lanes(m, LANES)),
        _ => None,
    };
    let raw_file = match &lanes {
        Some(_) => Some(
            File::open(image_path)
                .with_context(|| format!("{}: cannot reopen the image", image_path.display()))?,
        ),
        None => None,
    };
    let rx = std::sync::Mutex::new(rx);
    let back_rx = std::sync::Mutex::new(back_rx);
    let failed = std::sync::Mutex::new(None::<anyhow::Error>);
    let (source_res, units, bytes_written, write_err) = std::thread::scope(|sc| {
        type Finish<'s> = Box<dyn FnOnce() -> Result<ReaderEnd> + 's>;
        let finish_source: Finish<'_> = match (&lanes, &raw_file, &map) {
            (Some(lanes), Some(file), Some(m)) => {
                let hs: Vec<_> = lanes
                    .iter()
                    .enumerate()
                    .map(|(k, lane)| {
                        let tx = tx.clone();
                        let (back_rx, head) = (&back_rx, &head);
                        sc.spawn(move || {
                            let lane_map: Vec<(Extent, Option<String>)> =
                                lane.iter().map(|&i| m[i].clone()).collect();
                            lane_stream(
                                file,
                                image_path,
                                (k == 0).then_some(head.as_slice()),
                                &lane_map,
                                target_size,
                                stop_r,
                                abort_r,
                                tx,
                                back_rx,
                            )
                        })
                    })
                    .collect();
                drop(tx);
                Box::new(move || {
                    let mut end = head_len as u64;
                    let mut checked = 0usize;
                    let mut first_err = None;
                    for h in hs {
                        match h
                            .join()
                            .unwrap_or_else(|_| Err(anyhow!("an image reader thread panicked")))
                        {
                            Ok((e, c)) => {
                                end = end.max(e);
                                checked += c;
                            }
                            Err(e) => {
                                first_err.get_or_insert(e);
                            }
                        }
                    }
                    match first_err {
                        Some(e) => Err(e),
                        None => Ok(ReaderEnd {
                            end,
                            image_sha256: None,
                            bmap_checked: checked,
                        }),
                    }
                })
            }
            _ => {
                let stream_hash = StreamHash::new(image_path, map.as_deref(), want_whole);
                let (ptx, prx) = sync_channel::<Piece>(QUEUE);
                let (back_r, map_r) = (&back_rx, map.as_deref());
                let rh = sc.spawn(move || {
                    read_stream(
                        input,
                        head_len,
                        map_r,
                        target_size,
                        stop_r,
                        abort_r,
                        ptx,
                        back_r,
                    )
                });
                let back_h = back_tx.clone();
                let head_h = &head;
                let hh = sc.spawn(move || {
                    hash_stream(stream_hash, head_h, target_size, abort_r, prx, tx, &back_h)
                });
                let mapped = map.is_some();
                Box::new(move || {
                    let r = rh
                        .join()
                        .unwrap_or_else(|_| Err(anyhow!("the image reader thread panicked")));
                    let h = hh
                        .join()
                        .unwrap_or_else(|_| Err(anyhow!("the image hash thread panicked")));
                    // A corrupt image first: the reader only stopped because of it.
                    let h = h?;
                    let end = r?;
                    if stop_r.load(Ordering::Relaxed) {
                        return Ok(ReaderEnd {
                            end,
                            image_sha256: None,
                            bmap_checked: 0,
                        });
                    }
                    let (image_sha256, bmap_checked) = h.finish(end, mapped)?;
                    Ok(ReaderEnd {
                        end,
                        image_sha256,
                        bmap_checked,
                    })
                })
            }
        };
        // WRITERS threads take chunks as they come (two writes in flight keep the device
        // busy while one completes) and hash what they wrote (the SHA-256 the read-back
        // compares with), except inside a bmap range with a SHA-256: the read-back compares
        // the whole range with that.
        let (rx, failed, checked) = (&rx, &failed, &checked);
        let worker = || {
            let mut units: Vec<Unit> = Vec::new();
            let mut written = 0u64;
            loop {
                let c = match rx.lock() {
                    Ok(r) => match r.recv() {
                        Ok(c) => c,
                        Err(_) => break,
                    },
                    Err(_) => break,
                };
                let ok = !stop.load(Ordering::Relaxed);
                if ok {
                    let data = &c.buf.get(c.len)[..c.len];
                    match t.write_at(data, c.off) {
                        Ok(()) => {
                            let (off, len) = (c.off, c.len as u64);
                            let i = checked.partition_point(|(e, _)| e.end() <= off);
                            let inside = checked
                                .get(i)
                                .is_some_and(|(e, _)| e.start <= off && off + len <= e.end());
                            if !inside {
                                units.push(Unit {
                                    off,
                                    len,
                                    sha: Sha256::digest(data).into(),
                                    image_bytes: true,
                                });
                            }
                            written += len;
                            progress.done.fetch_add(len, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failed.lock()
                                && f.is_none()
                            {
                                *f = Some(e);
                            }
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
                // Recycle the buffer; after an error keep draining so the reader can finish.
                let _ = back_tx.send(c.buf);
            }
            (units, written)
        };
        let handles: Vec<_> = (0..WRITERS).map(|_| sc.spawn(worker)).collect();
        let mut units: Vec<Unit> = Vec::new();
        let mut written = 0u64;
        for h in handles {
            if let Ok((u, w)) = h.join() {
                units.extend(u);
                written += w;
            }
        }
        let mut err = failed.lock().ok().and_then(|mut f| f.take());
        if err.is_none() && stop.load(Ordering::Relaxed) {
            err = Some(interrupted());
        }
        // Every checked range was written whole when nothing failed.
        if err.is_none() {
            units.extend(checked.iter().map(|(e, sha)| Unit {
                off: e.start,
                len: e.len,
                sha: *sha,
                image_bytes: true,
            }));
        }
        units.sort_by_key(|u| u.off);
        (finish_source(), units, written, err)
    });
    // A corrupt image or a failed read first (the writers only stopped because of it), then
    // write errors.
    let rend = source_res?;
    if let Some(e) = write_err {
        return Err(e);
    }
    *reached = rend.end;
    if stop.load(Ordering::Relaxed) {
        return Err(interrupted());
    }
    // With a map the reader stops after the last mapped range; without one it reads to the end.
    let short = match (map.is_some(), image_size) {
        (true, Some(sz)) => rend.end > sz,
        (false, Some(sz)) => rend.end != sz,
        _ => false,
    };
    if short {
        bail!(
            "{}: the image ended at byte {} but should be {} bytes long",
            image_path.display(),
            rend.end,
            image_size.unwrap_or(0)
        );
    }
    let image_size = image_size.unwrap_or(rend.end);
    t.sync()?;
    timings.write_s = secs(t1);

    // 3. Geometry: backup GPT to the disk's end, headers fixed, --grow.
    let t2 = Instant::now();
    progress.phase("fit", 0);
    let mut first = AlignedBuf::new(HEAD as usize);
    first.get_mut(head.len())[..head.len()].copy_from_slice(&head);
    let crate::flash::geometry::Fit {
        writes: fit_writes,
        notes: fit_notes,
    } = {
        let overlay = Overlay {
            head: first.get(HEAD as usize),
            dev: &t.plain,
            size: t.size,
        };
        let has_table = crate::table::read_table(&head, 512).is_ok();
        fit(&overlay, has_table, image_size, t.size, t.sector, grow)?
    };
    let mut units = units;
    let mut bytes_written = bytes_written;
    let n_fit = fit_writes.len();
    // The part of each write in the first MiB goes into the in-memory head.
    let mut outside: Vec<(u64, Vec<u8>)> = Vec::new();
    for (off, data) in fit_writes {
        let end = off.saturating_add(data.len() as u64);
        if end > t.size {
            bail!("geometry fit wrote past the end of the disk (byte {end}): a bug");
        }
        let mut o = off;
        let mut d: &[u8] = &data;
        if o < HEAD {
            let k = ((HEAD - o) as usize).min(d.len());
            first.get_mut(HEAD as usize)[o as usize..o as usize + k].copy_from_slice(&d[..k]);
            o += k as u64;
            d = &d[k..];
        }
        if !d.is_empty() {
            outside.push((o, d.to_vec()));
        }
    }
    bytes_written += apply_fit(t, image_path, &mut units, &outside)?;
    t.sync()?;
    timings.fit_s = secs(t2);

    // 4. Read every piece back.
    let t3 = Instant::now();
    let table = crate::table::read_table(&first.get(HEAD as usize).to_vec(), 512).ok();
    units.sort_by_key(|u| u.off);
    let verified: u64 = units.iter().map(|u| u.len).sum();
    progress.phase("verify", verified);
    // A raw image is compared byte for byte (cheaper than hashing again); others by SHA-256.
    let raw_image = if raw {
        Some(
            File::open(image_path)
                .with_context(|| format!("{}: cannot reopen the image", image_path.display()))?,
        )
    } else {
        None
    };
    let bad = read_back(t, &units, raw_image.as_ref(), stop, progress)?;
    let mut rb = AlignedBuf::new(CHUNK + 8192);
    let mut mismatches: Vec<ReadbackMismatch> = Vec::new();
    if !bad.is_empty() {
        let fixed = repair(
            t,
            Written {
                image: image_path,
                patches: &outside,
            },
            &bad,
            retries,
            table.as_ref(),
            &mut mismatches,
            warn,
        )?;
        if !fixed {
            let list: Vec<String> = mismatches
                .iter()
                .filter(|m| !m.fixed)
                .map(describe)
                .collect();
            bail!(
                "{}: read-back differs from what was written after {retries} rewrites: {}. \
                 The card or its reader does not keep what it is given (worn or fake card, bad \
                 adapter?); try another card",
                t.path.display(),
                list.join("; ")
            );
        }
    }
    timings.readback_s = secs(t3);

    // 5. The first MiB, last.
    let t4 = Instant::now();
    progress.phase("finish", HEAD);
    let head_len = HEAD.min(t.size) as usize;
    let head_bytes = first.get(head_len);
    let head_sha: [u8; 32] = Sha256::digest(head_bytes).into();
    let mut ok = false;
    for attempt in 0..=retries {
        t.write_at(head_bytes, 0)?;
        t.sync()?;
        let got = t.read_into(&mut rb, 0, head_len)?;
        if Sha256::digest(got).as_slice() == head_sha {
            ok = true;
            break;
        }
        warn(&format!(
            "{}: the first MiB read back different (attempt {}), rewriting",
            t.path.display(),
            attempt + 1
        ));
    }
    if !ok {
        bail!(
            "{}: the first MiB (partition tables) does not read back as written after {retries} \
             rewrites",
            t.path.display()
        );
    }
    bytes_written += head_len as u64;
    let (partitions, partitions_from) = kernel_partitions(t, table.as_ref(), warn);
    timings.finish_s = secs(t4);
    timings.total_s = secs(t0);
    Ok(FlashReport {
        image_size,
        image_sha256: rend.image_sha256,
        bmap_ranges_checked: rend.bmap_checked,
        bytes_written,
        pieces: units.len() + 1,
        bytes_verified: verified + head_len as u64,
        mismatches,
        fit_notes,
        fit_writes: n_fit,
        partitions,
        partitions_from,
        direct_io: t.direct,
        timings,
    })
}

fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// Read every unit back (`O_DIRECT`) and return those that differ from what was written.
///
/// With a raw image, units holding the image's own bytes are cut into `CHUNK` pieces that
/// any of the `READERS` threads may take (several reads in flight, no unit waiting for one
/// thread) and compared byte for byte with the image; every other unit is read whole by one
/// thread and its SHA-256 compared.
fn read_back(
    t: &Target,
    units: &[Unit],
    image: Option<&File>,
    stop: &AtomicBool,
    progress: &Progress,
) -> Result<Vec<Unit>> {
    // (unit, offset, length, compare with the image) in disk order.
    let mut items: Vec<(usize, u64, u64, bool)> = Vec::new();
    for (i, u) in units.iter().enumerate() {
        if image.is_some() && u.image_bytes {
            let mut p = u.off;
            while p < u.off + u.len {
                let l = (u.off + u.len - p).min(CHUNK as u64);
                items.push((i, p, l, true));
                p += l;
            }
        } else {
            items.push((i, u.off, u.len, false));
        }
    }
    let differs: Vec<AtomicBool> = units.iter().map(|_| AtomicBool::new(false)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || -> Result<()> {
        let mut buf = AlignedBuf::new(CHUNK + 8192);
        let mut img = vec![0u8; if image.is_some() { CHUNK } else { 0 }];
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(i, off, len, compare)) = items.get(k) else {
                break;
            };
            let bad = match image.filter(|_| compare) {
                Some(f) => {
                    let mut bad = false;
                    let mut p = off;
                    while p < off + len {
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let l = (off + len - p).min(CHUNK as u64) as usize;
                        let (st, _) = t.fill_window(&mut buf, p, l)?;
                        let got = &buf.get(st + l)[st..st + l];
                        f.read_exact_at(&mut img[..l], p).with_context(|| {
                            format!("reading the image again at byte {p} to compare")
                        })?;
                        bad |= got != &img[..l];
                        progress.done.fetch_add(l as u64, Ordering::Relaxed);
                        p += l as u64;
                    }
                    bad
                }
                None => match hash_range(t, off, len, stop, progress)? {
                    Some(sha) => sha != units[i].sha,
                    None => return Ok(()),
                },
            };
            if bad {
                differs[i].store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    };
    let results: Vec<Result<()>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..READERS).map(|_| sc.spawn(worker)).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a read-back thread panicked")))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted (Ctrl-C or a termination signal)");
    }
    Ok(units
        .iter()
        .zip(&differs)
        .filter(|(_, d)| d.load(Ordering::Relaxed))
        .map(|(u, _)| *u)
        .collect())
}

/// SHA-256 of `len` bytes of the target at `off`, read back with `O_DIRECT`: a helper thread
/// reads the next piece while this one hashes the last (a large range is read at the
/// device's speed, not at read + hash). None when `stop` was set.
fn hash_range(
    t: &Target,
    off: u64,
    len: u64,
    stop: &AtomicBool,
    progress: &Progress,
) -> Result<Option<[u8; 32]>> {
    let (ftx, frx) = sync_channel::<Result<(AlignedBuf, usize, usize)>>(2);
    let (btx, brx) = sync_channel::<AlignedBuf>(3);
    for _ in 0..3 {
        let _ = btx.send(AlignedBuf::new(CHUNK + 8192));
    }
    std::thread::scope(|sc| {
        sc.spawn(move || {
            let mut p = off;
            while p < off + len && !stop.load(Ordering::Relaxed) {
                let Ok(mut buf) = brx.recv() else { return };
                let l = (off + len - p).min(CHUNK as u64) as usize;
                let r = t.fill_window(&mut buf, p, l).map(|(st, _)| (buf, st, l));
                let failed = r.is_err();
                if ftx.send(r).is_err() || failed {
                    return;
                }
                p += l as u64;
            }
        });
        let mut h = Sha256::new();
        let mut seen = 0u64;
        for r in frx.iter() {
            let (buf, st, l) = r?;
            h.update(&buf.get(st + l)[st..st + l]);
            progress.done.fetch_add(l as u64, Ordering::Relaxed);
            seen += l as u64;
            let _ = btx.send(buf);
        }
        if seen < len {
            // Stopped.
            return Ok(None);
        }
        Ok(Some(h.finalize().into()))
    })
}

/// 64 hex digits as 32 bytes.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.trim().as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        *o = (d(b[2 * i])? * 16 + d(b[2 * i + 1])?) as u8;
    }
    Some(out)
}

/// Write the fit's changes outside the first MiB. A unit already written that a change
/// overlaps (the stale backup GPT inside the image) is read again from the image (checked
/// against its hash), patched, rewritten, and replaced by pieces with their new hashes; the
/// rest of the changes become pieces of their own.
fn apply_fit(
    t: &Target,
    image: &Path,
    units: &mut Vec<Unit>,
    writes: &[(u64, Vec<u8>)],
) -> Result<u64> {
    if writes.is_empty() {
        return Ok(0);
    }
    units.sort_by_key(|u| u.off);
    let overlaps = |o: u64, l: u64, w: &(u64, Vec<u8>)| w.0 < o + l && w.0 + w.1.len() as u64 > o;
    let hit: Vec<bool> = units
        .iter()
        .map(|u| writes.iter().any(|w| overlaps(u.off, u.len, w)))
        .collect();
    let picked: Vec<Unit> = units
        .iter()
        .zip(&hit)
        .filter(|(_, h)| **h)
        .map(|(u, _)| *u)
        .collect();
    let mut n = 0u64;
    let mut fresh: Vec<Unit> = Vec::new();
    let mut h = Sha256::new();
    fetch_each(image, &picked, &mut |i, off, data, last| {
        h.update(data);
        if last {
            let got: [u8; 32] = std::mem::take(&mut h).finalize().into();
            if got != picked[i].sha {
                bail!(
                    "{}: the image changed while flashing (bytes at {} differ from the first read)",
                    image.display(),
                    picked[i].off
                );
            }
        }
        let len = data.len() as u64;
        let touched = writes.iter().any(|w| overlaps(off, len, w));
        let d = if touched {
            overlay(off, data, writes)
        } else {
            data.to_vec()
        };
        if touched {
            t.write_at(&d, off)?;
            n += len;
        }
        fresh.push(Unit {
            off,
            len,
            sha: Sha256::digest(&d).into(),
            image_bytes: !touched,
        });
        Ok(())
    })?;
    let mut kept: Vec<Unit> = units
        .iter()
        .zip(&hit)
        .filter(|(_, h)| !**h)
        .map(|(u, _)| *u)
        .collect();
    kept.extend(fresh);
    kept.sort_by_key(|u| u.off);
    *units = kept;
    // The parts of the writes that no unit covers.
    let covered: Vec<Extent> = units.iter().map(|u| Extent::new(u.off, u.len)).collect();
    for (o, w) in writes {
        let free =
            crate::imaging::ranges::subtract(&[Extent::new(*o, w.len() as u64)], &covered, t.size);
        for e in free {
            let d = &w[(e.start - o) as usize..(e.end() - o) as usize];
            t.write_at(d, e.start)?;
            n += e.len;
            units.push(Unit {
                off: e.start,
                len: e.len,
                sha: Sha256::digest(d).into(),
                image_bytes: false,
            });
        }
    }
    units.sort_by_key(|u| u.off);
    Ok(n)
}

/// Where the bytes written come from: the image, with the geometry fit's changes (outside
/// the first MiB) on top.
#[derive(Clone, Copy)]
struct Written<'a> {
    image: &'a Path,
    patches: &'a [(u64, Vec<u8>)],
}

/// Whether the writes cover every byte of `[off, off + len)`.
fn covered_by(writes: &[(u64, Vec<u8>)], off: u64, len: u64) -> bool {
    let ranges = crate::imaging::ranges::normalize(
        writes
            .iter()
            .map(|(o, d)| Extent::new(*o, d.len() as u64))
            .collect(),
    );
    crate::imaging::ranges::subtract(&[Extent::new(off, len)], &ranges, off.saturating_add(len))
        .is_empty()
}

/// `data` (the bytes at `off`) with the writes that overlap it copied on top.
fn overlay(off: u64, data: &[u8], writes: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut d = data.to_vec();
    let end = off + data.len() as u64;
    for (o, w) in writes {
        let we = o + w.len() as u64;
        if *o < end && we > off {
            let s = (*o).max(off);
            let e = we.min(end);
            d[(s - off) as usize..(e - off) as usize]
                .copy_from_slice(&w[(s - o) as usize..(e - o) as usize]);
        }
    }
    d
}

/// `offset N (+len) in partition 8 (hassos-data)`.
pub fn describe(m: &ReadbackMismatch) -> String {
    let part = match (m.partition, &m.partition_name) {
        (Some(n), Some(name)) => format!("partition {n} ({name})"),
        (Some(n), None) => format!("partition {n}"),
        _ => {
            return format!(
                "offset {} ({} bytes) outside the partitions",
                m.offset, m.length
            );
        }
    };
    format!("offset {} ({} bytes) in {part}", m.offset, m.length)
}

/// The partition holding byte `off` of the image's table.
fn locate(table: Option<&PartitionTable>, off: u64) -> (Option<u32>, Option<String>) {
    let Some(t) = table else {
        return (None, None);
    };
    for p in &t.partitions {
        let s = p.start_bytes(t.sector_size);
        if off >= s && off < s.saturating_add(p.size_bytes(t.sector_size)) {
            return (Some(p.number), p.name.clone());
        }
    }
    (None, None)
}

/// Rewrite and re-read the units that read back wrong, piece by piece, up to `retries` times
/// each piece. Every differing sector range is recorded (by offset and partition). Returns
/// true when all were fixed.
fn repair(
    t: &Target,
    written: Written<'_>,
    bad: &[Unit],
    retries: u32,
    table: Option<&PartitionTable>,
    out: &mut Vec<ReadbackMismatch>,
    warn: &mut dyn FnMut(&str),
) -> Result<bool> {
    let mut rb = AlignedBuf::new(CHUNK + 8192);
    let s = t.s() as usize;
    // Pieces that differ now: (offset, image bytes, its mismatches in `out`).
    let mut todo: Vec<(u64, Vec<u8>, std::ops::Range<usize>)> = Vec::new();
    let Written { image, patches } = written;
    let mut differing_units = vec![false; bad.len()];
    let mut h = Sha256::new();
    // What was written to a unit the geometry fit touched is the image's bytes with the fit's
    // changes on top; a unit the changes cover whole (the new backup GPT at the disk's end,
    // maybe past the image) is not read from the image at all.
    let covered = |u: &Unit| covered_by(patches, u.off, u.len);
    let from_image: Vec<usize> = (0..bad.len()).filter(|&i| !covered(&bad[i])).collect();
    let fetch: Vec<Unit> = from_image.iter().map(|&i| bad[i]).collect();
    let mut per_piece = |i: usize, off: u64, image_bytes: &[u8], last: bool| -> Result<()> {
        let patched;
        let want = if bad[i].image_bytes {
            image_bytes
        } else {
            patched = overlay(off, image_bytes, patches);
            patched.as_slice()
        };
        h.update(want);
        if last {
            let got: [u8; 32] = std::mem::take(&mut h).finalize().into();
            if got != bad[i].sha {
                bail!(
                    "{}: the image changed while flashing (bytes at {} differ from the first read)",
                    image.display(),
                    bad[i].off
                );
            }
        }
        let got = t.read_into(&mut rb, off, want.len())?;
        if got == want {
            return Ok(());
        }
        differing_units[i] = true;
        let first_idx = out.len();
        let mut k = 0usize;
        while k < want.len() {
            let l = s.min(want.len() - k);
            if got[k..k + l] != want[k..k + l] {
                let o = off + k as u64;
                let extend =
                    out.len() > first_idx && out.last().is_some_and(|m| m.offset + m.length == o);
                match out.last_mut() {
                    Some(m) if extend => m.length += l as u64,
                    _ => {
                        let (partition, partition_name) = locate(table, o);
                        out.push(ReadbackMismatch {
                            offset: o,
                            length: l as u64,
                            partition,
                            partition_name,
                            rewrites: 0,
                            fixed: false,
                        });
                    }
                }
            }
            k += l;
        }
        todo.push((off, want.to_vec(), first_idx..out.len()));
        Ok(())
    };
    fetch_each(image, &fetch, &mut |k, off, data, last| {
        per_piece(from_image[k], off, data, last)
    })?;
    for i in (0..bad.len()).filter(|&i| covered(&bad[i])) {
        let u = bad[i];
        let mut p = u.off;
        while p < u.off + u.len {
            let l = (u.off + u.len - p).min(CHUNK as u64);
            let zeros = vec![0u8; l as usize];
            per_piece(i, p, &zeros, p + l == u.off + u.len)?;
            p += l;
        }
    }
    // Units that read back wrong once and right now (a transient read error): recorded whole.
    for (u, differs) in bad.iter().zip(&differing_units) {
        if !differs {
            let (partition, partition_name) = locate(table, u.off);
            out.push(ReadbackMismatch {
                offset: u.off,
                length: u.len,
                partition,
                partition_name,
                rewrites: 0,
                fixed: true,
            });
            warn(&format!(
                "read-back mismatch at {}: right on the second read (a transient read error)",
                describe(out.last().map_or(&ReadbackMismatch::default(), |m| m))
            ));
        }
    }
    let mut all_fixed = true;
    for (off, want, idx) in &todo {
        let mut fixed = false;
        let mut tries = 0;
        while tries < retries {
            tries += 1;
            t.write_at(want, *off)?;
            t.sync()?;
            if t.read_into(&mut rb, *off, want.len())? == want.as_slice() {
                fixed = true;
                break;
            }
        }
        for m in &mut out[idx.clone()] {
            m.rewrites = tries;
            m.fixed = fixed;
        }
        for m in &out[idx.clone()] {
            warn(&format!(
                "read-back mismatch at {}: {}",
                describe(m),
                if fixed {
                    format!("fixed by rewrite {tries}")
                } else {
                    format!("still wrong after {tries} rewrites")
                }
            ));
        }
        all_fixed &= fixed;
    }
    Ok(all_fixed)
}

/// What [`fetch_each`] calls per piece: `(unit index, piece offset, bytes, last piece)`.
type PieceFn<'a> = dyn FnMut(usize, u64, &[u8], bool) -> Result<()> + 'a;

/// Read the image again for the given units (sorted, not overlapping), handing each to `f`
/// in pieces of at most [`CHUNK`] bytes: `(unit index, piece offset, bytes, last piece of the
/// unit)`. Only one piece is in memory at a time.
fn fetch_each(image: &Path, units: &[Unit], f: &mut PieceFn<'_>) -> Result<()> {
    if std::fs::metadata(image).is_ok_and(|m| m.file_type().is_block_device()) {
        for (i, u) in units.iter().enumerate() {
            let mut p = u.off;
            while p < u.off + u.len {
                let l = (u.off + u.len - p).min(CHUNK as u64);
                let piece = Unit {
                    off: p,
                    len: l,
                    sha: u.sha,
                    image_bytes: u.image_bytes,
                };
                let d = fetch_device(image, &[piece])?;
                let data = d.first().map(Vec::as_slice).unwrap_or(&[]);
                f(i, p, data, p + l == u.off + u.len)?;
                p += l;
            }
        }
        return Ok(());
    }
    let mut input = ImageInput::open(image)?;
    input.set_hash_stored(false);
    let mut pos = 0u64;
    let mut b = vec![0u8; CHUNK];
    for (i, u) in units.iter().enumerate() {
        if u.off < pos {
            bail!("internal: pieces to re-read overlap");
        }
        input.skip(u.off - pos)?;
        pos = u.off;
        while pos < u.off + u.len {
            let l = (u.off + u.len - pos).min(CHUNK as u64) as usize;
            let n = input.fill(&mut b[..l])?;
            if n < l {
                bail!(
                    "{}: the image ended before byte {} on the second read",
                    image.display(),
                    pos + l as u64
                );
            }
            f(i, pos, &b[..l], pos + l as u64 == u.off + u.len)?;
            pos += l as u64;
        }
    }
    Ok(())
}

/// Re-read pieces from an image that is a block device (`clone` streams a source disk as
/// its image; see `crate::flash::clone`): opened read-only (`O_DIRECT` when it takes it). A
/// piece that fails to read is read again sector by sector and unreadable sectors come back
/// as zeros, exactly as the rescue reader streamed them.
fn fetch_device(dev: &Path, units: &[Unit]) -> Result<Vec<Vec<u8>>> {
    let name = dev.display();
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(o_direct())
        .open(dev)
        .or_else(|_| File::open(dev))
        .with_context(|| format!("{name}: cannot open to read again"))?;
    let sector = u64::from(crate::sys::logical_sector_size(&f).unwrap_or(512).max(512));
    let mut out = Vec::with_capacity(units.len());
    for u in units {
        let a = u.off - u.off % sector;
        let e = (u.off + u.len).div_ceil(sector) * sector;
        let n = (e - a) as usize;
        let mut buf = AlignedBuf::new(n);
        let b = buf.get_mut(n);
        if f.read_exact_at(b, a).is_err() {
            for (i, s) in b.chunks_mut(sector as usize).enumerate() {
                if f.read_exact_at(s, a + i as u64 * sector).is_err() {
                    s.fill(0);
                }
            }
        }
        let st = (u.off - a) as usize;
        out.push(b[st..st + u.len as usize].to_vec());
    }
    Ok(out)
}

/// A piece of the image on its way from the reader thread to the hash thread: `n` bytes at
/// `off`, of which the first `send` lie on the disk and go on to the writers.
struct Piece {
    off: u64,
    n: usize,
    send: usize,
    buf: AlignedBuf,
}

/// The reader thread: decompress, skip unmapped ranges and hand pieces (in image order) to
/// the hash thread. Returns one past the last image byte seen. Stops early when `abort` (the
/// hash thread found the image corrupt) or `stop` is set.
#[allow(clippy::too_many_arguments)]
fn read_stream(
    mut input: ImageInput,
    head_len: usize,
    map: Option<&[(Extent, Option<String>)]>,
    target_size: u64,
    stop: &AtomicBool,
    abort: &AtomicBool,
    tx: SyncSender<Piece>,
    back: &Mutex<Receiver<AlignedBuf>>,
) -> Result<u64> {
    let path = input.path.clone();
    let mut pos = head_len as u64;
    if (head_len as u64) < HEAD {
        // The whole image fits in the first MiB.
        let mut b = [0u8; 1];
        if input.fill(&mut b)? != 0 {
            bail!(
                "{}: internal: head shorter than 1 MiB but more data follows",
                path.display()
            );
        }
        return Ok(pos);
    }
    // Pieces to send: mapped ranges from HEAD on, cut into CHUNK-sized pieces.
    let mut idx = 0usize;
    loop {
        if stop.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
            break;
        }
        let (start, len) = match map {
            Some(m) => {
                while idx < m.len() && m[idx].0.end() <= pos.max(HEAD) {
                    idx += 1;
                }
                let Some((e, _)) = m.get(idx) else { break };
                let s = e.start.max(pos).max(HEAD);
                (s, (e.end() - s).min(CHUNK as u64) as usize)
            }
            None => (pos, CHUNK),
        };
        if start > pos {
            input.skip(start - pos)?;
            pos = start;
        }
        let Some(mut buf) = take_buf(back) else {
            break;
        };
        let n = input.fill(&mut buf.get_mut(len)[..len])?;
        if n < len && map.is_some() {
            bail!(
                "{}: the image ends at byte {} but its bmap maps bytes up to {}",
                path.display(),
                pos + n as u64,
                start + len as u64
            );
        }
        let send = (n as u64).min(target_size.saturating_sub(pos)) as usize;
        let at = pos;
        pos += n as u64;
        if tx
            .send(Piece {
                off: at,
                n,
                send,
                buf,
            })
            .is_err()
        {
            break;
        }
        if n < len {
            break;
        }
    }
    Ok(pos)
}

/// A free buffer from the pool (None once the pool is gone).
fn take_buf(back: &Mutex<Receiver<AlignedBuf>>) -> Option<AlignedBuf> {
    back.lock().ok()?.recv().ok()
}

/// Share the bmap ranges (indices into `map`) among `n` reader threads, balancing bytes:
/// the largest ranges first, each to the least loaded lane; ranges that start in the first
/// MiB go to lane 0, which hashes the in-memory first MiB. Each lane in disk order.
fn plan_lanes(map: &[(Extent, Option<String>)], n: usize) -> Vec<Vec<usize>> {
    let n = n.max(1);
    let mut lanes: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n];
    let mut order: Vec<usize> = (0..map.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(map[i].0.len));
    for i in order {
        let k = if map[i].0.start < HEAD {
            0
        } else {
            (0..n).min_by_key(|&k| lanes[k].0).unwrap_or(0)
        };
        lanes[k].0 += map[i].0.len;
        lanes[k].1.push(i);
    }
    lanes
        .into_iter()
        .map(|(_, mut l)| {
            l.sort_by_key(|&i| map[i].0.start);
            l
        })
        .collect()
}

/// One lane of a raw image with a bmap: read its ranges (past the first MiB) with `pread`,
/// hash each against the bmap as it completes, and hand the pieces to the writers. `head` is
/// the in-memory first MiB for the lane that holds the ranges starting there. Returns one
/// past the last byte read and the number of ranges checked.
#[allow(clippy::too_many_arguments)]
fn lane_stream(
    file: &File,
    path: &Path,
    head: Option<&[u8]>,
    lane: &[(Extent, Option<String>)],
    target_size: u64,
    stop: &AtomicBool,
    abort: &AtomicBool,
    tx: SyncSender<Chunk>,
    back: &Mutex<Receiver<AlignedBuf>>,
) -> Result<(u64, usize)> {
    let res = (|| -> Result<(u64, usize)> {
        let mut hash = StreamHash::new(path, Some(lane), false);
        if let Some(h) = head {
            hash.feed(0, h)?;
        }
        let mut end = 0u64;
        for (e, _) in lane {
            let mut pos = e.start.max(HEAD);
            while pos < e.end() {
                if stop.load(Ordering::Relaxed) || abort.load(Ordering::Relaxed) {
                    return Ok((end, 0));
                }
                let len = (e.end() - pos).min(CHUNK as u64) as usize;
                let Some(mut buf) = take_buf(back) else {
                    return Ok((end, 0));
                };
                let data = &mut buf.get_mut(len)[..len];
                let mut got = 0usize;
                while got < len {
                    match file.read_at(&mut data[got..], pos + got as u64) {
                        Ok(0) => bail!(
                            "{}: the image ends at byte {} but its bmap maps bytes up to {}",
                            path.display(),
                            pos + got as u64,
                            e.end()
                        ),
                        Ok(k) => got += k,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => {
                            return Err(err).with_context(|| {
                                format!("{}: reading the image at byte {pos}", path.display())
                            });
                        }
                    }
                }
                hash.feed(pos, data)?;
                let send = (len as u64).min(target_size.saturating_sub(pos)) as usize;
                if send == 0 && data.iter().any(|&b| b != 0) {
                    bail!(
                        "{}: the image has data at byte {pos}, past the end of the disk \
                         ({target_size} bytes)",
                        path.display()
                    );
                }
                if send > 0
                    && tx
                        .send(Chunk {
                            off: pos,
                            len: send,
                            buf,
                        })
                        .is_err()
                {
                    return Ok((end, 0));
                }
                pos += len as u64;
                end = end.max(pos);
            }
        }
        if stop.load(Ordering::Relaxed) {
            return Ok((end, 0));
        }
        let (_, checked) = hash.finish(end, true)?;
        Ok((end, checked))
    })();
    if res.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    res
}

/// SHA-256 of an image stream as it passes: each bmap range (checked against the bmap's
/// digest as soon as the range is complete) and, when asked, the whole image.
struct StreamHash<'a> {
    path: &'a Path,
    checked: Vec<(Extent, String)>,
    ranges: RangeHasher,
    seen: usize,
    whole: Option<Sha256>,
}

impl<'a> StreamHash<'a> {
    fn new(path: &'a Path, map: Option<&[(Extent, Option<String>)]>, want_whole: bool) -> Self {
        let checked: Vec<(Extent, String)> = map
            .unwrap_or(&[])
            .iter()
            .filter_map(|(e, c)| c.as_ref().map(|c| (*e, c.to_ascii_lowercase())))
            .collect();
        StreamHash {
            path,
            ranges: RangeHasher::new(checked.iter().map(|c| c.0).collect()),
            checked,
            seen: 0,
            whole: want_whole.then(Sha256::new),
        }
    }

    fn corrupt(&self, e: &Extent, got: &str, want: &str) -> anyhow::Error {
        anyhow!(
            "{}: the image is corrupt: bytes {}..{} hash to {got}, its bmap says {want} \
             (damaged download or copy?). Nothing of the partition tables was written",
            self.path.display(),
            e.start,
            e.end()
        )
    }

    /// Hash `data`, found at `off` (pieces come in image order), and check every bmap range
    /// it completes.
    fn feed(&mut self, off: u64, data: &[u8]) -> Result<()> {
        self.ranges.feed(off, data.len() as u64, Some(data));
        if let Some(w) = self.whole.as_mut() {
            w.update(data);
        }
        while self.seen < self.ranges.done.len() {
            let (e, got) = &self.ranges.done[self.seen];
            let want = &self.checked[self.seen].1;
            if got != want {
                return Err(self.corrupt(e, got, want));
            }
            self.seen += 1;
        }
        Ok(())
    }

    /// The image ended at `end`: check the ranges still open (with a bmap, what follows the
    /// last piece is unmapped) and return the whole image's SHA-256 and the ranges checked.
    fn finish(mut self, end: u64, mapped: bool) -> Result<(Option<String>, usize)> {
        if mapped {
            self.ranges.feed(end, 0, None);
            let ranges = std::mem::replace(&mut self.ranges, RangeHasher::new(Vec::new()));
            let fin = ranges.finish();
            for ((e, got), (_, want)) in fin.iter().zip(self.checked.iter()).skip(self.seen) {
                if got != want {
                    return Err(self.corrupt(e, got, want));
                }
            }
        }
        Ok((self.whole.map(|w| hex(&w.finalize())), self.checked.len()))
    }
}

/// The hash thread: hashes each piece from the reader (in image order, so that SHA-256 runs
/// on its own core beside the reading and writing) and passes the part on the disk to the
/// writers. On a corrupt image it sets `abort`, forwards nothing more and returns the
/// buffers until the reader stops.
fn hash_stream<'a>(
    mut hash: StreamHash<'a>,
    head: &[u8],
    target_size: u64,
    abort: &AtomicBool,
    rx: Receiver<Piece>,
    tx: SyncSender<Chunk>,
    back: &SyncSender<AlignedBuf>,
) -> Result<StreamHash<'a>> {
    let mut res = hash.feed(0, head);
    let mut tx = Some(tx);
    for p in rx.iter() {
        if res.is_ok() {
            let data = &p.buf.get(p.n)[..p.n];
            res = hash.feed(p.off, data);
            if res.is_ok() && p.send == 0 && p.n > 0 && data.iter().any(|&b| b != 0) {
                res = Err(anyhow!(
                    "{}: the image has data at byte {}, past the end of the disk ({target_size} \
                     bytes)",
                    hash.path.display(),
                    p.off
                ));
            }
            if res.is_err() {
                abort.store(true, Ordering::Relaxed);
                tx = None;
            }
        }
        match (&tx, res.is_ok() && p.send > 0) {
            (Some(w), true) => {
                let c = Chunk {
                    off: p.off,
                    len: p.send,
                    buf: p.buf,
                };
                if let Err(e) = w.send(c) {
                    let _ = back.send(e.0.buf);
                }
            }
            _ => {
                let _ = back.send(p.buf);
            }
        }
    }
    res.map(|()| hash)
}
/// The target as it will be after the flash: the first MiB from memory, the rest from disk.
struct Overlay<'a> {
    head: &'a [u8],
    dev: &'a File,
    size: u64,
}

impl ReadAt for Overlay<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read at {offset} past the end of the disk"),
                )
            })?;
        let mut o = offset;
        let mut b: &mut [u8] = buf;
        if o < HEAD {
            let k = ((HEAD - o) as usize).min(b.len());
            b[..k].copy_from_slice(&self.head[o as usize..o as usize + k]);
            o += k as u64;
            b = &mut b[k..];
        }
        if o < end {
            FileExt::read_exact_at(self.dev, b, o)?;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.size
    }
}

/// The geometry step: the one call into [`crate::flash::geometry::fit_to_disk`] (backup GPT
/// moved to the disk's end, headers fixed, stale backup zeroed, `--grow`). An image without
/// a partition table is written as it is.
fn fit(
    disk: &dyn ReadAt,
    has_table: bool,
    image_size: u64,
    target_size: u64,
    sector: u32,
    grow: bool,
) -> Result<crate::flash::geometry::Fit> {
    if !has_table {
        return Ok(crate::flash::geometry::Fit {
            writes: Vec::new(),
            notes: vec!["the image has no partition table: nothing to fit to the disk".into()],
        });
    }
    crate::flash::geometry::fit_to_disk(
        disk,
        image_size,
        target_size,
        sector,
        &crate::flash::geometry::FitOptions { grow },
    )
}

/// After the flash: re-read the table (`BLKRRPART`, retried while udev holds the disk) and
/// list the partitions sysfs shows; on a kernel without a parser for the table, tell it
/// about them with `BLKPG` (what `partx -a` does).
fn kernel_partitions(
    t: &Target,
    table: Option<&PartitionTable>,
    warn: &mut dyn FnMut(&str),
) -> (Vec<KernelPartition>, String) {
    let Some(name) = t.sys_name.as_deref().filter(|_| t.is_block) else {
        return (Vec::new(), "none (not a block device)".into());
    };
    let rr = crate::sys::reread_partition_table_retrying(&t.writer, 10, Duration::from_millis(300));
    let mut how = match &rr {
        Ok(()) => "BLKRRPART".to_string(),
        Err(e) => format!("BLKRRPART failed: {e}"),
    };
    let mut parts = sysfs_partitions(name);
    if rr.is_err() {
        // The kernel kept its old view (a loop device without partition scanning): drop it.
        for p in &parts {
            let _ = crate::sys::delete_partition(&t.writer, p.number);
        }
        parts = sysfs_partitions(name);
    }
    let want = table.map(|tb| tb.partitions.len()).unwrap_or(0);
    if parts.is_empty()
        && let Some(tb) = table
        && want > 0
    {
        let ss = u64::from(tb.sector_size);
        let mut added = 0;
        for p in &tb.partitions {
            let (s, l) = (p.start_lba * ss, p.size_lba * ss);
            if l == 0 || s.saturating_add(l) > t.size {
                continue;
            }
            if crate::sys::add_partition(&t.writer, p.number, s, l).is_ok() {
                added += 1;
            }
        }
        if added > 0 {
            how = "BLKPG (the kernel did not parse the table itself)".into();
            parts = sysfs_partitions(name);
        }
    }
    if parts.is_empty() && want > 0 {
        warn(&format!(
            "{}: the kernel shows none of the {want} partitions ({how}); unplug and replug the \
             card to see them",
            t.path.display()
        ));
    }
    (parts, how)
}

/// Partitions of `/sys/block/<name>`.
fn sysfs_partitions(name: &str) -> Vec<KernelPartition> {
    let dir = Path::new("/sys/block").join(name);
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return v;
    };
    for e in rd.flatten() {
        let p = e.path();
        let read = |a: &str| {
            std::fs::read_to_string(p.join(a))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        if let (Some(n), Some(s), Some(l)) = (read("partition"), read("start"), read("size")) {
            v.push(KernelPartition {
                name: e.file_name().to_string_lossy().into_owned(),
                number: n as u32,
                start: s * 512,
                size: l * 512,
            });
        }
    }
    v.sort_by_key(|p| p.number);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn job_for<'a>(
        path: &Path,
        map: Option<Vec<(Extent, Option<String>)>>,
        stop: &'a AtomicBool,
        progress: &'a Progress,
        warn: &'a mut dyn FnMut(&str),
    ) -> Job<'a> {
        let mut input = ImageInput::open(path).unwrap();
        let mut head = vec![0u8; HEAD as usize];
        let n = input.fill(&mut head).unwrap();
        head.truncate(n);
        let size = std::fs::metadata(path).unwrap().len();
        Job {
            input,
            head,
            map,
            image_size: Some(size),
            grow: false,
            retries: 2,
            stop,
            progress,
            warn,
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
            .collect()
    }

    #[test]
    fn odd_sized_image_onto_a_file_target() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("x.img");
        let data = pattern((3 << 20) + 12_345, 7);
        std::fs::write(&img, &data).unwrap();
        let tgt = d.path().join("t.bin");
        let mut f = File::create(&tgt).unwrap();
        f.write_all(&vec![0xAAu8; 8 << 20]).unwrap();
        drop(f);
        let t = Target::open(&tgt, None).unwrap();
        let stop = AtomicBool::new(false);
        let p = Progress::default();
        let mut w = |_: &str| {};
        let r = flash(job_for(&img, None, &stop, &p, &mut w), &t).unwrap();
        let got = std::fs::read(&tgt).unwrap();
        assert_eq!(&got[..data.len()], &data[..]);
        // The byte after the image keeps what the disk held; the last MiB was zeroed.
        assert_eq!(got[data.len()], 0xAA);
        assert!(got[(7 << 20)..].iter().all(|&b| b == 0));
        assert_eq!(r.image_size, data.len() as u64);
        assert_eq!(
            r.image_sha256.as_deref(),
            Some(hex(&Sha256::digest(&data)).as_str())
        );
        assert!(r.mismatches.is_empty());
    }

    #[test]
    fn mapped_ranges_only_and_corrupt_bmap_wipes() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("x.img");
        let data = pattern(6 << 20, 3);
        std::fs::write(&img, &data).unwrap();
        let ranges = [Extent::new(0, 8192), Extent::new(2 << 20, 4096 * 3)];
        let sum = |e: &Extent| hex(&Sha256::digest(&data[e.start as usize..e.end() as usize]));
        let map: Vec<_> = ranges.iter().map(|e| (*e, Some(sum(e)))).collect();
        let tgt = d.path().join("t.bin");
        std::fs::write(&tgt, vec![0x55u8; 8 << 20]).unwrap();
        let t = Target::open(&tgt, None).unwrap();
        let stop = AtomicBool::new(false);
        let p = Progress::default();
        let mut w = |_: &str| {};
        flash(job_for(&img, Some(map.clone()), &stop, &p, &mut w), &t).unwrap();
        let got = std::fs::read(&tgt).unwrap();
        assert_eq!(&got[..HEAD as usize], &data[..HEAD as usize]);
        assert_eq!(
            &got[2 << 20..(2 << 20) + 12288],
            &data[2 << 20..(2 << 20) + 12288]
        );
        assert_eq!(got[(2 << 20) + 12288], 0x55, "unmapped bytes untouched");

        // A wrong checksum: refused, and the disk left blank.
        let mut bad = map;
        bad[1].1 = Some("0".repeat(64));
        let e = flash(job_for(&img, Some(bad), &stop, &p, &mut w), &t).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("corrupt") && msg.contains("blank"), "{msg}");
        let got = std::fs::read(&tgt).unwrap();
        assert!(got[..HEAD as usize].iter().all(|&b| b == 0));
    }

    #[test]
    fn raw_image_lanes_write_every_range_and_catch_corruption_in_any_lane() {
        let d = tempfile::tempdir().unwrap();
        let img = d.path().join("x.img");
        let data = pattern(24 << 20, 7);
        std::fs::write(&img, &data).unwrap();
        // One range across the first MiB, one of 2.25 chunks, small ones on both sides.
        let ranges = [
            Extent::new(0, (1 << 20) + 40960),
            Extent::new(3 << 20, 4096),
            Extent::new(4 << 20, (9 << 20) + 4096),
            Extent::new(15 << 20, 65536),
            Extent::new(17 << 20, 1 << 20),
            Extent::new(23 << 20, 8192),
        ];
        let sum = |e: &Extent| hex(&Sha256::digest(&data[e.start as usize..e.end() as usize]));
        let map: Vec<_> = ranges.iter().map(|e| (*e, Some(sum(e)))).collect();
        let lanes = plan_lanes(&map, LANES);
        assert_eq!(lanes.len(), 2);
        assert!(
            lanes[0].contains(&0),
            "the range in the first MiB is lane 0's"
        );
        let mut all: Vec<usize> = lanes.concat();
        all.sort();
        assert_eq!(all, (0..ranges.len()).collect::<Vec<_>>());
        assert!(lanes.iter().all(|l| !l.is_empty() && l.is_sorted()));

        let tgt = d.path().join("t.bin");
        std::fs::write(&tgt, vec![0x55u8; 32 << 20]).unwrap();
        let t = Target::open(&tgt, None).unwrap();
        let stop = AtomicBool::new(false);
        let p = Progress::default();
        let mut w = |_: &str| {};
        let r = flash(job_for(&img, Some(map.clone()), &stop, &p, &mut w), &t).unwrap();
        assert_eq!(r.bmap_ranges_checked, ranges.len());
        let got = std::fs::read(&tgt).unwrap();
        for e in &ranges {
            let (a, b) = (e.start as usize, e.end() as usize);
            assert_eq!(&got[a..b], &data[a..b], "range at {a}");
            assert_eq!(got[b], 0x55, "unmapped byte after {b} untouched");
        }

        // A wrong checksum on any range, whichever lane reads it: refused, disk blank.
        for k in 1..ranges.len() {
            let mut bad = map.clone();
            bad[k].1 = Some("0".repeat(64));
            let e = flash(job_for(&img, Some(bad), &stop, &p, &mut w), &t).unwrap_err();
            let msg = format!("{e:#}");
            let span = format!("bytes {}..{}", ranges[k].start, ranges[k].end());
            assert!(msg.contains("corrupt") && msg.contains(&span), "{msg}");
            assert!(msg.contains("blank"), "{msg}");
            let got = std::fs::read(&tgt).unwrap();
            assert!(got[..HEAD as usize].iter().all(|&b| b == 0), "range {k}");
        }

        // A bmap mapping bytes past the image's end.
        let mut long = map;
        let past = Extent::new(24 << 20, 8192);
        long.push((past, Some(sum(&Extent::new(0, 8192)))));
        let e = flash(job_for(&img, Some(long), &stop, &p, &mut w), &t).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("the image ends at byte"), "{msg}");
    }

    #[test]
    fn overlay_reads_head_from_memory() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t");
        std::fs::write(&p, vec![9u8; 3 << 20]).unwrap();
        let f = File::open(&p).unwrap();
        let head = vec![1u8; HEAD as usize];
        let o = Overlay {
            head: &head,
            dev: &f,
            size: 3 << 20,
        };
        let mut b = vec![0u8; 16];
        o.read_exact_at(&mut b, HEAD - 8).unwrap();
        assert_eq!(&b[..8], &[1; 8]);
        assert_eq!(&b[8..], &[9; 8]);
        assert!(o.read_exact_at(&mut b, (3 << 20) - 8).is_err());
    }
}
