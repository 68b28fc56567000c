//! The write and read-back loop of `media-test` on a device the caller opened (read-write,
//! `O_EXCL`, `O_DIRECT`): the pattern goes to every planned extent in 1 MiB aligned writes, is
//! synced, the kernel's buffers are dropped (`BLKFLSBUF`), and everything is read back and
//! classified. A failed write or read is narrowed down to 64 KiB pieces, then to single
//! logical sectors, so bad areas are located exactly. [`wipe`] zeroes the first and last MiB
//! afterwards.

use super::{Extent, Kind, Pattern, Plan, Profile, RECORD, RecordState, Speed, Tally};
use crate::imaging::reader::AlignedBuf;
use anyhow::{Result, bail};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

/// Bytes per write or read.
pub const CHUNK: usize = 1 << 20;
/// Size of the pieces a failed chunk is split into before going sector by sector.
const PIECE: usize = 64 << 10;

/// The phase a run is in, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Idle = 0,
    Write = 1,
    Sync = 2,
    Read = 3,
    Wipe = 4,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "start",
            Phase::Write => "write",
            Phase::Sync => "sync",
            Phase::Read => "read",
            Phase::Wipe => "wipe",
        }
    }
}

/// Counters a progress display reads while a run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    phase: AtomicU8,
    /// Bytes of the current phase done and to do.
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// Bytes found bad so far (failed writes, then bad records read back).
    pub bad: AtomicU64,
}

impl Progress {
    fn start(&self, phase: Phase, total: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.phase.store(phase as u8, Ordering::Relaxed);
    }
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Write,
            2 => Phase::Sync,
            3 => Phase::Read,
            4 => Phase::Wipe,
            _ => Phase::Idle,
        }
    }
}

/// The run was stopped by a signal; the device holds part of the pattern.
#[derive(Debug, thiserror::Error)]
#[error(
    "{device}: media-test interrupted during the {phase} phase; the device's content is now \
     undefined (partly overwritten with the test pattern) — run media-test again or write an image"
)]
pub struct Interrupted {
    pub device: String,
    pub phase: &'static str,
}

/// What the loop measured.
#[derive(Debug, Clone)]
pub struct Measured {
    pub tally: Tally,
    pub write: Speed,
    pub read: Speed,
    pub profile: Profile,
    /// Byte ranges whose write failed.
    pub write_failed: Vec<Extent>,
    /// `fdatasync` after writing failed (some writes may not have reached the medium).
    pub sync_error: Option<String>,
}

/// Errors after which going on makes no sense: the device went away or refuses all writes.
fn fatal(e: &io::Error) -> Option<&'static str> {
    match e.raw_os_error()? {
        nix::libc::ENODEV | nix::libc::ENXIO | nix::libc::ENOMEDIUM | nix::libc::ESHUTDOWN => {
            Some("the device disappeared (card or reader removed?)")
        }
        nix::libc::EPERM | nix::libc::EROFS | nix::libc::EACCES => {
            Some("the device refuses writes (write-protected or read-only)")
        }
        nix::libc::EINVAL => {
            Some("the device rejected an aligned direct I/O request (unsupported sector size?)")
        }
        _ => None,
    }
}

fn write_all_at(f: &File, buf: &[u8], off: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.write_at(&buf[done..], off + done as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("no space at byte {}", off + done as u64),
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
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

/// Push `[start, start+len)` onto sorted `v`, merging with the last extent.
fn push_extent(v: &mut Vec<Extent>, start: u64, len: u64) {
    if let Some(l) = v.last_mut()
        && l.end() == start
    {
        l.len += len;
        return;
    }
    v.push(Extent { start, len });
}

/// Do `op` on `buf` at `off`; on failure narrow it down to pieces, then sectors, recording the
/// failing ones in `failed`. Fatal errors end the run.
fn located<F>(
    name: &str,
    buf: &mut [u8],
    off: u64,
    sector: usize,
    failed: &mut Vec<Extent>,
    op: &F,
) -> Result<()>
where
    F: Fn(&mut [u8], u64) -> io::Result<()>,
{
    let e = match op(buf, off) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if let Some(why) = fatal(&e) {
        bail!("{name}: {why}: {e} at byte {off}");
    }
    let step = if buf.len() > PIECE { PIECE } else { sector };
    for (i, part) in buf.chunks_mut(step).enumerate() {
        let o = off + (i * step) as u64;
        if step == sector {
            match op(part, o) {
                Ok(()) => {}
                Err(e) => {
                    if let Some(why) = fatal(&e) {
                        bail!("{name}: {why}: {e} at byte {o}");
                    }
                    push_extent(failed, o, part.len() as u64);
                }
            }
        } else {
            located(name, part, o, sector, failed, op)?;
        }
    }
    Ok(())
}

fn in_extents(v: &[Extent], off: u64) -> bool {
    let i = v.partition_point(|e| e.end() <= off);
    v.get(i).is_some_and(|e| e.start <= off)
}

/// Chunks of the plan: (offset, length), each at most [`CHUNK`] and aligned like the extents.
fn chunks(plan: &Plan) -> impl Iterator<Item = (u64, usize)> + '_ {
    plan.extents.iter().flat_map(|e| {
        (0..e.len.div_ceil(CHUNK as u64)).map(move |i| {
            let o = e.start + i * CHUNK as u64;
            (o, (e.end() - o).min(CHUNK as u64) as usize)
        })
    })
}

/// The device under test: the open file, its name for messages, size and logical sector size.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub file: &'a File,
    pub name: &'a str,
    pub size: u64,
    pub sector: u32,
}

/// Write the pattern over `plan`, sync, drop the buffer cache, read everything back and
/// classify it. Stops between chunks when `stop` is set ([`Interrupted`]).
pub fn run(
    target: Target<'_>,
    plan: &Plan,
    pattern: Pattern,
    progress: &Progress,
    stop: &AtomicBool,
) -> Result<Measured> {
    let Target {
        file,
        name,
        size,
        sector,
    } = target;
    let sector = (sector as usize).max(RECORD);
    let mut buf = AlignedBuf::new(CHUNK);
    let mut expected = vec![0u8; CHUNK];
    let mut profile = Profile::new(size);
    let total = plan.bytes();
    let interrupted = |phase: Phase| Interrupted {
        device: name.to_string(),
        phase: phase.name(),
    };

    // Write.
    progress.start(Phase::Write, total);
    let mut write_failed: Vec<Extent> = Vec::new();
    let t0 = Instant::now();
    for (off, len) in chunks(plan) {
        if stop.load(Ordering::Relaxed) {
            return Err(interrupted(Phase::Write).into());
        }
        let b = buf.get_mut(len);
        pattern.fill(off, b);
        let before = write_failed.len();
        let t = Instant::now();
        located(
            name,
            b,
            off,
            sector,
            &mut write_failed,
            &|p: &mut [u8], o| write_all_at(file, p, o),
        )?;
        profile.add(off, len as u64, t.elapsed().as_secs_f64(), false);
        if write_failed.len() != before {
            let bad: u64 = write_failed[before..].iter().map(|e| e.len).sum();
            progress.bad.fetch_add(bad, Ordering::Relaxed);
        }
        progress.done.fetch_add(len as u64, Ordering::Relaxed);
    }
    progress.start(Phase::Sync, 0);
    let sync_error = file.sync_data().err().map(|e| e.to_string());
    let write = Speed::new(total, t0.elapsed().as_secs_f64());
    if stop.load(Ordering::Relaxed) {
        return Err(interrupted(Phase::Sync).into());
    }
    // Reads must come from the medium: O_DIRECT already bypasses the page cache; drop it
    // anyway in case the device could not be opened with O_DIRECT everywhere.
    let _ = crate::sys::flush_buffers(file);

    // Read back.
    progress.start(Phase::Read, total);
    progress.bad.store(0, Ordering::Relaxed);
    let mut tally = Tally::default();
    let t0 = Instant::now();
    for (off, len) in chunks(plan) {
        if stop.load(Ordering::Relaxed) {
            return Err(interrupted(Phase::Read).into());
        }
        let b = buf.get_mut(len);
        b.fill(0);
        let mut unreadable: Vec<Extent> = Vec::new();
        let t = Instant::now();
        located(name, b, off, sector, &mut unreadable, &|p: &mut [u8], o| {
            read_exact_at(file, p, o)
        })?;
        profile.add(off, len as u64, t.elapsed().as_secs_f64(), true);
        let exp = &mut expected[..len];
        pattern.fill(off, exp);
        let got = buf.get(len);
        let bad_before = tally.counts.corrupt
            + tally.counts.unreadable
            + tally.counts.write_failed
            + tally.counts.aliased;
        if unreadable.is_empty() && got == &exp[..] && !in_range(&write_failed, off, len) {
            tally.add(off, len as u64, Kind::Ok, None);
        } else {
            for (i, rec) in got.chunks(RECORD).enumerate() {
                let o = off + (i * RECORD) as u64;
                let n = rec.len() as u64;
                if in_extents(&unreadable, o) {
                    tally.add(o, n, Kind::Unreadable, None);
                    continue;
                }
                match pattern.check(o, rec) {
                    RecordState::Ok => tally.add(o, n, Kind::Ok, None),
                    _ if in_extents(&write_failed, o) => tally.add(o, n, Kind::WriteFailed, None),
                    RecordState::Aliased(h) => tally.add(o, n, Kind::Aliased, Some(h)),
                    RecordState::Corrupt => tally.add(o, n, Kind::Corrupt, None),
                }
            }
        }
        let bad_after = tally.counts.corrupt
            + tally.counts.unreadable
            + tally.counts.write_failed
            + tally.counts.aliased;
        progress
            .bad
            .fetch_add(bad_after - bad_before, Ordering::Relaxed);
        progress.done.fetch_add(len as u64, Ordering::Relaxed);
    }
    let read = Speed::new(total, t0.elapsed().as_secs_f64());
    Ok(Measured {
        tally,
        write,
        read,
        profile,
        write_failed,
        sync_error,
    })
}

fn in_range(v: &[Extent], off: u64, len: usize) -> bool {
    let i = v.partition_point(|e| e.end() <= off);
    v.get(i).is_some_and(|e| e.start < off + len as u64)
}

/// Zero the first and last MiB (or the whole device when smaller) and sync, so no stale
/// partition table or test pattern is left where tools look for one. Returns the bytes zeroed.
pub fn wipe(file: &File, name: &str, size: u64, progress: &Progress) -> Result<u64> {
    let mib = 1u64 << 20;
    let head = size.min(mib);
    let tail_start = size.saturating_sub(mib).max(head);
    let mut ranges = vec![(0, head)];
    if tail_start < size {
        ranges.push((tail_start, size - tail_start));
    }
    progress.start(Phase::Wipe, ranges.iter().map(|r| r.1).sum());
    let buf = AlignedBuf::new(CHUNK);
    let mut zeroed = 0;
    for (off, len) in ranges {
        write_all_at(file, buf.get(len as usize), off).map_err(|e| {
            anyhow::anyhow!("{name}: could not zero {len} bytes at byte {off}: {e}")
        })?;
        zeroed += len;
        progress.done.fetch_add(len, Ordering::Relaxed);
    }
    file.sync_data()
        .map_err(|e| anyhow::anyhow!("{name}: sync after zeroing failed: {e}"))?;
    Ok(zeroed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_plan() {
        let plan = Plan {
            quick: true,
            extents: vec![
                Extent {
                    start: 0,
                    len: (CHUNK as u64) * 2 + 4096,
                },
                Extent {
                    start: 10 << 20,
                    len: 4096,
                },
            ],
            granularity: 512,
        };
        let c: Vec<_> = chunks(&plan).collect();
        assert_eq!(
            c,
            vec![
                (0, CHUNK),
                (CHUNK as u64, CHUNK),
                (2 * CHUNK as u64, 4096),
                (10 << 20, 4096)
            ]
        );
    }

    #[test]
    fn failed_ops_are_located_to_sectors() {
        // Fails any request touching bytes [70_000, 70_100) or [500_000, 500_512).
        let bad = |o: u64, n: usize| {
            let e = o + n as u64;
            (o < 70_100 && 70_000 < e) || (o < 500_512 && 500_000 < e)
        };
        let op = |p: &mut [u8], o: u64| {
            if bad(o, p.len()) {
                Err(io::Error::from_raw_os_error(nix::libc::EIO))
            } else {
                Ok(())
            }
        };
        let mut buf = vec![0u8; CHUNK];
        let mut failed = Vec::new();
        located("/dev/x", &mut buf, 0, 512, &mut failed, &op).unwrap();
        assert_eq!(
            failed,
            vec![
                Extent {
                    start: 69_632,
                    len: 512
                },
                Extent {
                    start: 499_712,
                    len: 1024
                }
            ]
        );
        assert!(in_extents(&failed, 69_632));
        assert!(in_extents(&failed, 70_143));
        assert!(!in_extents(&failed, 70_144));
        assert!(in_range(&failed, 0, 70_000));
        assert!(!in_range(&failed, 0, 69_632));

        let gone = |_: &mut [u8], _: u64| Err(io::Error::from_raw_os_error(nix::libc::ENODEV));
        let e = located("/dev/x", &mut buf, 0, 512, &mut failed, &gone).unwrap_err();
        assert!(e.to_string().contains("disappeared"), "{e}");
    }
}
