//! The rescue passes, after GNU ddrescue's algorithm (peers.md §2.2), over the used-range
//! map (the *domain*) only:
//!
//! 1. **copy**: the domain in order, in large aligned reads. With a seekable raw output a
//!    failed read is marked non-trimmed (`*`) and the reader skips ahead (64 KiB at first,
//!    doubling on each further error, at most 1% of the disk, reset by a good read), so the
//!    readable areas are saved first. With a stream output (compressed file, stdout) nothing
//!    can be skipped: the failed read is rescued in place (64 KiB pieces, then sectors, each
//!    sector retried) and its bad sectors are zero-filled.
//! 2. **copy-skipped**: what pass 1 skipped, without skipping (raw output only); then
//!    **split**: failed reads larger than 64 KiB again in 64 KiB pieces.
//! 3. **trim**: each non-trimmed block sector by sector from its leading edge to the first
//!    error, then from its trailing edge back to the first error; the rest is non-scraped.
//! 4. **scrape**: non-scraped blocks sector by sector.
//! 5. **retry**: bad sectors again, `retries` times.
//!
//! Every result goes into the mapfile; bad sectors stay zero in the image. Pass 1 feeds the
//! [`Pipeline`]; the later passes write the raw image directly and save the mapfile after an
//! `fdatasync` at the save interval. [`Progress`] counters are shared with the display.

use super::mapfile::{Phase, Status};
use super::pipeline::{Chunk, MapKeeper, Payload, Pipeline, write_sparse};
use super::ranges::{self, Extent};
use super::reader::{AlignedBuf, ReadError, SourceReader};
use crate::verify::manifest::{PhaseTiming, ProfileBin};
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Counters the progress display reads while a run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of the current phase done and to do.
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// Bytes marked bad so far, and read errors.
    pub bad: AtomicU64,
    pub errors: AtomicU64,
    pub phase: Mutex<String>,
}

impl Progress {
    /// Start a phase of `total` bytes.
    pub fn phase(&self, name: &str, total: u64) {
        if let Ok(mut p) = self.phase.lock() {
            *p = name.to_string();
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }
    pub fn phase_name(&self) -> String {
        self.phase.lock().map(|p| p.clone()).unwrap_or_default()
    }
    fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// Knobs of the passes.
#[derive(Debug, Clone)]
pub struct RescueOptions {
    /// Bytes per read in the copy passes (a multiple of the sector size).
    pub chunk: usize,
    /// Retry passes over bad sectors.
    pub retries: u32,
    pub trim: bool,
    pub scrape: bool,
    /// First skip after an error; it doubles up to `skip_max`.
    pub skip_min: u64,
    pub skip_max: u64,
}

/// What pass 1 ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass1 {
    Done,
    Interrupted,
}

/// Read statistics per region of the source.
#[derive(Debug, Clone)]
pub struct Profile {
    bin: u64,
    pub bins: Vec<ProfileBin>,
}

impl Profile {
    /// About `n` equal regions over `size` bytes (each a multiple of 1 MiB).
    pub fn new(size: u64, n: u64) -> Self {
        let bin = (size.div_ceil(n.max(1))).div_ceil(1 << 20).max(1) << 20;
        let count = size.div_ceil(bin);
        Profile {
            bin,
            bins: (0..count)
                .map(|i| ProfileBin {
                    start: i * bin,
                    length: bin.min(size - i * bin),
                    bytes_read: 0,
                    seconds: 0.0,
                    errors: 0,
                    retries: 0,
                    timeouts: 0,
                })
                .collect(),
        }
    }
    fn record(&mut self, off: u64, len: u64, secs: f64, ok: bool, retry: bool) {
        if let Some(b) = self.bins.get_mut((off / self.bin) as usize) {
            b.seconds += secs;
            if ok {
                b.bytes_read += len;
            } else {
                b.errors += 1;
            }
            if retry {
                b.retries += 1;
            }
        }
    }
    fn timeout(&mut self, off: u64) {
        if let Some(b) = self.bins.get_mut((off / self.bin) as usize) {
            b.timeouts += 1;
        }
    }
}

/// The rescue state for one run.
pub struct Rescuer<'a> {
    pub reader: SourceReader,
    pub opts: RescueOptions,
    pub progress: &'a Progress,
    pub stop: &'a AtomicBool,
    pub profile: Profile,
    pub read_errors: u64,
    pub retried: u64,
    pub passes: Vec<String>,
    pub phases: Vec<PhaseTiming>,
    sector: u64,
}

/// Result of one read attempt.
enum Got {
    Ok,
    Bad,
}

impl<'a> Rescuer<'a> {
    pub fn new(
        reader: SourceReader,
        opts: RescueOptions,
        progress: &'a Progress,
        stop: &'a AtomicBool,
    ) -> Self {
        let sector = u64::from(reader.sector());
        let profile = Profile::new(reader.size(), 256);
        Rescuer {
            reader,
            opts,
            progress,
            stop,
            profile,
            read_errors: 0,
            retried: 0,
            passes: Vec::new(),
            phases: Vec::new(),
            sector,
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn read(&mut self, buf: &mut AlignedBuf, len: usize, off: u64, retry: bool) -> Result<Got> {
        let t = Instant::now();
        let before = self.reader.stats.timeouts;
        let r = self.reader.read(buf, len, off);
        let secs = t.elapsed().as_secs_f64();
        if self.reader.stats.timeouts > before {
            self.profile.timeout(off);
        }
        match r {
            Ok(()) => {
                self.profile.record(off, len as u64, secs, true, retry);
                Ok(Got::Ok)
            }
            Err(ReadError::Media(_)) => {
                self.profile.record(off, len as u64, secs, false, retry);
                self.read_errors += 1;
                self.progress.errors.fetch_add(1, Ordering::Relaxed);
                Ok(Got::Bad)
            }
            Err(ReadError::Gone(why)) => bail!(why),
        }
    }

    fn timing(&mut self, name: &str, t: Instant, bytes: u64) {
        let secs = t.elapsed().as_secs_f64();
        self.phases.push(PhaseTiming {
            name: name.into(),
            seconds: secs,
            bytes,
            bytes_per_second: (secs > 0.0 && bytes > 0).then(|| bytes as f64 / secs),
        });
    }

    /// Pass 1 through the pipeline: zeros for unused ranges, the domain read in order.
    /// `inline` rescues failed reads in place (stream outputs).
    pub fn copy_stream(
        &mut self,
        size: u64,
        domain: &[Extent],
        pipe: &Pipeline,
        inline: bool,
    ) -> Result<Pass1> {
        let t = Instant::now();
        self.passes.push("copy".into());
        self.progress.phase("copy", ranges::total(domain));
        let chunk = self.opts.chunk.max(self.sector as usize);
        let mut pos = 0u64;
        let mut skip = 0u64;
        let mut read_bytes = 0u64;
        let send = |c: Chunk| -> Result<()> {
            pipe.send(c)
                .map_err(|_| anyhow::anyhow!("the writer stopped"))
        };
        for e in domain {
            if e.start > pos {
                send(Chunk {
                    off: pos,
                    payload: Payload::Zero(e.start - pos),
                    map: vec![],
                })?;
            }
            let mut p = e.start;
            while p < e.end() {
                if self.stopped() {
                    self.timing("copy", t, read_bytes);
                    return Ok(Pass1::Interrupted);
                }
                let n = (chunk as u64).min(e.end() - p) as usize;
                let mut buf = pipe.buffer(chunk);
                match self.read(&mut buf, n, p, false)? {
                    Got::Ok => {
                        read_bytes += n as u64;
                        skip = 0;
                        send(Chunk {
                            off: p,
                            payload: Payload::Data(buf, n),
                            map: vec![(Extent::new(p, n as u64), Status::Finished)],
                        })?;
                        self.progress.add(n as u64);
                        p += n as u64;
                    }
                    Got::Bad if inline => {
                        let updates = self.rescue_in_place(&mut buf, n, p)?;
                        send(Chunk {
                            off: p,
                            payload: Payload::Data(buf, n),
                            map: updates,
                        })?;
                        self.progress.add(n as u64);
                        p += n as u64;
                    }
                    Got::Bad => {
                        send(Chunk {
                            off: p,
                            payload: Payload::Zero(n as u64),
                            map: vec![(Extent::new(p, n as u64), Status::NonTrimmed)],
                        })?;
                        self.progress.add(n as u64);
                        p += n as u64;
                        skip = if skip == 0 {
                            self.opts.skip_min
                        } else {
                            (skip * 2).min(self.opts.skip_max)
                        };
                        let s = (skip / self.sector * self.sector).min(e.end() - p);
                        if s > 0 {
                            send(Chunk {
                                off: p,
                                payload: Payload::Zero(s),
                                map: vec![],
                            })?;
                            self.progress.add(s);
                            p += s;
                        }
                    }
                }
            }
            pos = e.end();
        }
        if pos < size {
            send(Chunk {
                off: pos,
                payload: Payload::Zero(size - pos),
                map: vec![],
            })?;
        }
        self.timing("copy", t, read_bytes);
        Ok(Pass1::Done)
    }

    /// Rescue one failed read in place: 64 KiB pieces, then sectors with retries; bad sectors
    /// are zeroed in `buf`. Returns the mapfile updates.
    fn rescue_in_place(
        &mut self,
        buf: &mut AlignedBuf,
        n: usize,
        off: u64,
    ) -> Result<Vec<(Extent, Status)>> {
        let sec = self.sector as usize;
        let piece = (64 * 1024).max(sec);
        let mut small = AlignedBuf::new(piece);
        let mut out: Vec<(Extent, Status)> = Vec::new();
        let mut push = |e: Extent, st: Status| match out.last_mut() {
            Some((l, s)) if *s == st && l.end() == e.start => l.len += e.len,
            _ => out.push((e, st)),
        };
        let mut i = 0;
        while i < n {
            let m = piece.min(n - i);
            let at = off + i as u64;
            if let Got::Ok = self.read(&mut small, m, at, false)? {
                buf.get_mut(n)[i..i + m].copy_from_slice(small.get(m));
                push(Extent::new(at, m as u64), Status::Finished);
                i += m;
                continue;
            }
            let mut j = 0;
            while j < m {
                let s = sec.min(m - j);
                let sat = at + j as u64;
                let mut ok = false;
                for attempt in 0..=self.opts.retries {
                    if attempt > 0 {
                        self.retried += 1;
                    }
                    if let Got::Ok = self.read(&mut small, s, sat, attempt > 0)? {
                        ok = true;
                        break;
                    }
                }
                let dst = &mut buf.get_mut(n)[i + j..i + j + s];
                if ok {
                    dst.copy_from_slice(small.get(s));
                    push(Extent::new(sat, s as u64), Status::Finished);
                } else {
                    dst.fill(0);
                    self.progress.bad.fetch_add(s as u64, Ordering::Relaxed);
                    push(Extent::new(sat, s as u64), Status::BadSector);
                }
                j += s;
            }
            i += m;
        }
        Ok(out)
    }

    /// Read `len` bytes at `off` into the raw image and the map, or mark them `fail`.
    #[allow(clippy::too_many_arguments)]
    fn copy_piece(
        &mut self,
        buf: &mut AlignedBuf,
        off: u64,
        len: usize,
        out: &File,
        k: &mut MapKeeper,
        fail: Status,
        retry: bool,
    ) -> Result<bool> {
        let got = self.read(buf, len, off, retry)?;
        let ok = matches!(got, Got::Ok);
        if ok {
            write_sparse(out, off, buf.get(len))
                .with_context(|| format!("writing the image at byte {off}"))?;
            k.map.set(off, len as u64, Status::Finished);
        } else {
            k.map.set(off, len as u64, fail);
        }
        k.map.current_pos = off + len as u64;
        if k.due() {
            out.sync_data().context("syncing the image")?;
            k.save()?;
        }
        Ok(ok)
    }

    /// The passes after pass 1, writing the raw image `out` directly: copy what is still
    /// non-tried in the domain, trim, scrape, retry. Returns false when interrupted.
    pub fn finish_passes(
        &mut self,
        domain: &[Extent],
        out: &File,
        k: &mut MapKeeper,
    ) -> Result<bool> {
        let sec = self.sector;
        // Copy non-tried areas (skipped by pass 1, or everything left on --resume).
        let todo = k.map.ranges_in(Status::NonTried, domain);
        if !todo.is_empty() {
            let t = Instant::now();
            let total = ranges::total(&todo);
            self.passes.push("copy-skipped".into());
            self.progress.phase("copy-skipped", total);
            k.map.phase = Phase::Copying;
            k.map.pass = 2;
            let chunk = self.opts.chunk.max(sec as usize);
            let mut buf = AlignedBuf::new(chunk);
            let mut got = 0u64;
            for e in todo {
                let mut p = e.start;
                while p < e.end() {
                    if self.stopped() {
                        return Ok(false);
                    }
                    let n = (chunk as u64).min(e.end() - p) as usize;
                    if self.copy_piece(&mut buf, p, n, out, k, Status::NonTrimmed, false)? {
                        got += n as u64;
                    }
                    self.progress.add(n as u64);
                    p += n as u64;
                }
            }
            self.timing("copy-skipped", t, got);
        }
        // Split: failed large reads again in 64 KiB pieces, so trimming (sector by sector)
        // only walks the pieces that really hold bad sectors.
        let piece = (64u64 << 10).max(sec);
        let todo: Vec<Extent> = k
            .map
            .ranges(Status::NonTrimmed)
            .into_iter()
            .filter(|e| e.len > piece)
            .collect();
        if !todo.is_empty() {
            let t = Instant::now();
            self.passes.push("split".into());
            self.progress.phase("split", ranges::total(&todo));
            let mut pbuf = AlignedBuf::new(piece as usize);
            let mut got = 0u64;
            for e in todo {
                let mut p = e.start;
                while p < e.end() {
                    if self.stopped() {
                        return Ok(false);
                    }
                    let n = piece.min(e.end() - p) as usize;
                    if self.copy_piece(&mut pbuf, p, n, out, k, Status::NonTrimmed, false)? {
                        got += n as u64;
                    }
                    self.progress.add(n as u64);
                    p += n as u64;
                }
            }
            self.timing("split", t, got);
        }
        let mut sbuf = AlignedBuf::new(sec as usize);
        // Trim.
        let todo = k.map.ranges(Status::NonTrimmed);
        if self.opts.trim && !todo.is_empty() {
            let t = Instant::now();
            self.passes.push("trim".into());
            self.progress.phase("trim", ranges::total(&todo));
            k.map.phase = Phase::Trimming;
            let mut got = 0;
            for e in todo {
                let mut p = e.start;
                while p < e.end() {
                    if self.stopped() {
                        return Ok(false);
                    }
                    let s = sec.min(e.end() - p) as usize;
                    let ok = self.copy_piece(&mut sbuf, p, s, out, k, Status::BadSector, false)?;
                    self.progress.add(s as u64);
                    p += s as u64;
                    if !ok {
                        self.progress.bad.fetch_add(s as u64, Ordering::Relaxed);
                        break;
                    }
                    got += s as u64;
                }
                let mut q = e.end();
                while q > p {
                    if self.stopped() {
                        return Ok(false);
                    }
                    let s = sec.min(q - p);
                    let ok = self.copy_piece(
                        &mut sbuf,
                        q - s,
                        s as usize,
                        out,
                        k,
                        Status::BadSector,
                        false,
                    )?;
                    self.progress.add(s);
                    q -= s;
                    if !ok {
                        self.progress.bad.fetch_add(s, Ordering::Relaxed);
                        break;
                    }
                    got += s;
                }
                if q > p {
                    k.map.set(
                        p,
                        q - p,
                        if self.opts.scrape {
                            Status::NonScraped
                        } else {
                            Status::BadSector
                        },
                    );
                }
            }
            self.timing("trim", t, got);
        } else if !todo.is_empty() {
            // No trimming: what failed stays non-trimmed for a later run, zero in the image.
            for e in &todo {
                k.map.set(
                    e.start,
                    e.len,
                    if self.opts.scrape {
                        Status::NonScraped
                    } else {
                        Status::NonTrimmed
                    },
                );
            }
        }
        // Scrape.
        let todo = k.map.ranges(Status::NonScraped);
        if self.opts.scrape && !todo.is_empty() {
            let t = Instant::now();
            self.passes.push("scrape".into());
            self.progress.phase("scrape", ranges::total(&todo));
            k.map.phase = Phase::Scraping;
            let mut got = 0;
            for e in todo {
                let mut p = e.start;
                while p < e.end() {
                    if self.stopped() {
                        return Ok(false);
                    }
                    let s = sec.min(e.end() - p) as usize;
                    if self.copy_piece(&mut sbuf, p, s, out, k, Status::BadSector, false)? {
                        got += s as u64;
                    } else {
                        self.progress.bad.fetch_add(s as u64, Ordering::Relaxed);
                    }
                    self.progress.add(s as u64);
                    p += s as u64;
                }
            }
            self.timing("scrape", t, got);
        }
        // Retry.
        for pass in 1..=self.opts.retries {
            let todo = k.map.ranges(Status::BadSector);
            if todo.is_empty() {
                break;
            }
            let t = Instant::now();
            let name = format!("retry {pass}");
            self.passes.push(name.clone());
            self.progress.phase(&name, ranges::total(&todo));
            k.map.phase = Phase::Retrying;
            k.map.pass = pass;
            let mut got = 0;
            // Alternate direction like ddrescue: odd passes backwards.
            let mut sectors: Vec<u64> = Vec::new();
            for e in &todo {
                let mut p = e.start;
                while p < e.end() {
                    sectors.push(p);
                    p += sec.min(e.end() - p);
                }
            }
            if pass % 2 == 1 {
                sectors.reverse();
            }
            for p in sectors {
                if self.stopped() {
                    return Ok(false);
                }
                let s = sec.min(k.map.size() - p) as usize;
                self.retried += 1;
                if self.copy_piece(&mut sbuf, p, s, out, k, Status::BadSector, true)? {
                    got += s as u64;
                    self.progress.bad.fetch_sub(s as u64, Ordering::Relaxed);
                }
                self.progress.add(s as u64);
            }
            self.timing(&name, t, got);
        }
        k.map.phase = Phase::Finished;
        k.map.current_pos = 0;
        Ok(true)
    }
}
