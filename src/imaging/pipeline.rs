//! The imaging pipeline: reader → whole-image hash → per-range hash → (compress →) write, one
//! thread per stage, joined by bounded queues so a slow stage holds the others back instead
//! of filling memory. Buffers travel by value (no copies) and come back to the reader
//! through a small pool.
//!
//! The writer applies each chunk's mapfile update only after the chunk is written, and saves
//! the mapfile (after `fdatasync` of a raw image) at the configured interval, so a mapfile on
//! disk never claims more than the image holds: what `--resume` relies on.

use super::compress::{self, Encoder, Format};
use super::mapfile::{Mapfile, Status};
use super::ranges::Extent;
use super::reader::AlignedBuf;
use crate::verify::bmap::hex;
use crate::verify::manifest::PhaseTiming;
use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// A MiB of zeros for hashing and writing unused ranges.
static ZEROS: [u8; 1 << 20] = [0u8; 1 << 20];

/// What a chunk carries.
#[derive(Debug)]
pub enum Payload {
    /// `len` bytes read from the source.
    Data(AlignedBuf, usize),
    /// `len` zero bytes (unused, or not read yet).
    Zero(u64),
}

/// A piece of the image, in order.
#[derive(Debug)]
pub struct Chunk {
    pub off: u64,
    pub payload: Payload,
    /// Mapfile updates to apply once the chunk is written.
    pub map: Vec<(Extent, Status)>,
}

impl Chunk {
    pub fn len(&self) -> u64 {
        match &self.payload {
            Payload::Data(_, n) => *n as u64,
            Payload::Zero(n) => *n,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A mapfile kept on disk while it changes.
pub struct MapKeeper {
    pub map: Mapfile,
    /// Where it is saved; None keeps it in memory only (stdout without `--mapfile`).
    pub path: Option<PathBuf>,
    pub command: String,
    pub started: SystemTime,
    pub interval: Duration,
    pub last_save: Instant,
}

impl MapKeeper {
    /// Save now.
    pub fn save(&mut self) -> Result<()> {
        self.last_save = Instant::now();
        match &self.path {
            Some(p) => self.map.save(p, &self.command, self.started),
            None => Ok(()),
        }
    }
    /// Whether the save interval has passed.
    pub fn due(&self) -> bool {
        self.last_save.elapsed() >= self.interval
    }
}

/// Where the image goes.
pub trait Sink: Send {
    fn data(&mut self, off: u64, b: &[u8]) -> io::Result<()>;
    fn zero(&mut self, off: u64, len: u64) -> io::Result<()>;
    /// Make everything written so far durable (before a mapfile save).
    fn sync(&mut self) -> io::Result<()>;
    /// Complete the output; returns the stored bytes and their SHA-256 when known.
    fn finish(self: Box<Self>) -> io::Result<(Option<u64>, Option<String>)>;
    /// Time spent by the sink's own helpers (called once, just before `finish`).
    fn timings(&mut self) -> Vec<PhaseTiming> {
        vec![]
    }
}

/// Bytes written between two background flushes of a raw image.
const FLUSH_EVERY: u64 = 64 << 20;

/// A raw image file written sparse: zero 4 KiB blocks and unused ranges become holes.
///
/// The kernel starts writing dirty pages back only when they reach a tenth of memory, so a
/// multi-GiB image would otherwise be written to disk entirely by the final `fsync`, after
/// everything else is done. A flusher thread `fdatasync`s the file every
/// [`FLUSH_EVERY`] written bytes instead, so the disk writes overlap reading and hashing and
/// the final sync has little left to do.
pub struct RawFileSink {
    file: File,
    size: u64,
    unflushed: u64,
    kick: Option<SyncSender<()>>,
    flusher: Option<JoinHandle<(Duration, u64)>>,
}

impl RawFileSink {
    /// Write the image into `file` (`size` bytes when finished).
    pub fn new(file: File, size: u64) -> io::Result<Self> {
        let bg = file.try_clone()?;
        let (kick, rx) = sync_channel::<()>(1);
        let flusher = std::thread::Builder::new()
            .name("lifeboat-flush".into())
            .spawn(move || {
                let mut busy = Duration::ZERO;
                let mut n = 0u64;
                for () in rx {
                    let t = Instant::now();
                    // A failure shows again in the writer's own final sync.
                    let _ = bg.sync_data();
                    busy += t.elapsed();
                    n += 1;
                }
                (busy, n)
            })?;
        Ok(RawFileSink {
            file,
            size,
            unflushed: 0,
            kick: Some(kick),
            flusher: Some(flusher),
        })
    }
}

impl Sink for RawFileSink {
    fn data(&mut self, off: u64, b: &[u8]) -> io::Result<()> {
        let n = write_sparse(&self.file, off, b)?;
        self.unflushed += n;
        if self.unflushed >= FLUSH_EVERY
            && let Some(k) = &self.kick
        {
            // Never wait: a flush still running covers these pages too.
            if k.try_send(()).is_ok() {
                self.unflushed = 0;
            }
        }
        Ok(())
    }
    fn zero(&mut self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn timings(&mut self) -> Vec<PhaseTiming> {
        self.kick = None;
        match self.flusher.take().map(|h| h.join()) {
            Some(Ok((busy, n))) => vec![stage(&format!("background fdatasync ×{n}"), busy, 0)],
            _ => vec![],
        }
    }
    fn finish(mut self: Box<Self>) -> io::Result<(Option<u64>, Option<String>)> {
        self.kick = None;
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        self.file.set_len(self.size)?;
        self.file.sync_all()?;
        Ok((None, None))
    }
}

/// True when every byte is zero (64 bytes at a time, as eight words the compiler vectorises).
pub fn is_zero(b: &[u8]) -> bool {
    let mut blocks = b.chunks_exact(64);
    blocks.all(|w| {
        w.chunks_exact(8)
            .map(|q| u64::from_ne_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]))
            .fold(0u64, |a, x| a | x)
            == 0
    }) && blocks.remainder().iter().all(|&x| x == 0)
}

/// Write `b` at `off`, leaving all-zero 4 KiB blocks unwritten (holes in a fresh file).
/// Returns the bytes written.
pub fn write_sparse(f: &File, off: u64, b: &[u8]) -> io::Result<u64> {
    const B: usize = 4096;
    let mut written = 0u64;
    let mut i = 0;
    while i < b.len() {
        // Skip zero blocks.
        while i < b.len() && is_zero(&b[i..(i + B).min(b.len())]) {
            i += B;
        }
        if i >= b.len() {
            break;
        }
        let s = i;
        while i < b.len() && !is_zero(&b[i..(i + B).min(b.len())]) {
            i += B;
        }
        let e = i.min(b.len());
        f.write_all_at(&b[s..e], off + s as u64)?;
        written += (e - s) as u64;
    }
    Ok(written)
}

/// Counts and hashes what passes through to `inner`.
pub struct HashWriter<W: Write> {
    inner: W,
    pub bytes: u64,
    hasher: Sha256,
    out: std::sync::Arc<std::sync::Mutex<Option<(u64, String)>>>,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hasher.update(&b[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        if let Ok(mut o) = self.out.lock() {
            *o = Some((self.bytes, hex(&self.hasher.clone().finalize())));
        }
        Ok(())
    }
}

struct PlainEnc<W: Write + Send>(W);
impl<W: Write + Send> Write for PlainEnc<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write + Send> Encoder for PlainEnc<W> {
    fn finish_stream(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

type Stats = std::sync::Arc<std::sync::Mutex<Option<(u64, String)>>>;

/// A sequential stream (stdout or a compressed file): every byte is written in order,
/// zeros included.
pub struct StreamSink {
    enc: Option<Box<dyn Encoder>>,
    file: Option<File>,
    stats: Stats,
    pos: u64,
}

impl StreamSink {
    /// `out` is the destination; `file` a handle to fsync at the end (None for stdout).
    pub fn new(
        out: Box<dyn Write + Send>,
        file: Option<File>,
        format: Format,
        level: i32,
        threads: u32,
    ) -> io::Result<Self> {
        let stats: Stats = std::sync::Arc::new(std::sync::Mutex::new(None));
        let hw = HashWriter {
            inner: out,
            bytes: 0,
            hasher: Sha256::new(),
            out: std::sync::Arc::clone(&stats),
        };
        let enc: Box<dyn Encoder> = if format == Format::Raw {
            Box::new(PlainEnc(hw))
        } else {
            compress::encoder(format, hw, level, threads)?
        };
        Ok(StreamSink {
            enc: Some(enc),
            file,
            stats,
            pos: 0,
        })
    }

    fn check(&mut self, off: u64) -> io::Result<&mut Box<dyn Encoder>> {
        if off != self.pos {
            return Err(io::Error::other(format!(
                "stream output out of order: got byte {off}, expected {}",
                self.pos
            )));
        }
        self.enc
            .as_mut()
            .ok_or_else(|| io::Error::other("stream already finished"))
    }
}

impl Sink for StreamSink {
    fn data(&mut self, off: u64, b: &[u8]) -> io::Result<()> {
        self.check(off)?.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
    fn zero(&mut self, off: u64, len: u64) -> io::Result<()> {
        let e = self.check(off)?;
        let mut left = len;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64) as usize;
            e.write_all(&ZEROS[..n])?;
            left -= n as u64;
        }
        self.pos += len;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> io::Result<(Option<u64>, Option<String>)> {
        if let Some(e) = self.enc.take() {
            e.finish_stream()?;
        }
        if let Some(f) = &self.file {
            f.sync_all()?;
        }
        let st = self.stats.lock().ok().and_then(|g| g.clone());
        Ok(match st {
            Some((n, h)) => (Some(n), Some(h)),
            None => (None, None),
        })
    }
}

/// Incremental SHA-256 of each of a sorted list of ranges, fed the image in order.
pub struct RangeHasher {
    ranges: Vec<Extent>,
    idx: usize,
    cur: Sha256,
    pub done: Vec<(Extent, String)>,
    /// Bytes hashed so far.
    pub hashed: u64,
}

impl RangeHasher {
    pub fn new(ranges: Vec<Extent>) -> Self {
        RangeHasher {
            ranges,
            idx: 0,
            cur: Sha256::new(),
            done: Vec::new(),
            hashed: 0,
        }
    }

    /// Feed `len` bytes at `off`: `data` when given, else zeros.
    pub fn feed(&mut self, off: u64, len: u64, data: Option<&[u8]>) {
        let end = off + len;
        let mut pos = off;
        while pos < end && self.idx < self.ranges.len() {
            let r = self.ranges[self.idx];
            if r.end() <= pos {
                self.finish_one();
                continue;
            }
            if r.start >= end {
                break;
            }
            let s = pos.max(r.start);
            let e = end.min(r.end());
            self.hashed += e - s;
            match data {
                Some(d) => self.cur.update(&d[(s - off) as usize..(e - off) as usize]),
                None => {
                    let mut left = e - s;
                    while left > 0 {
                        let n = left.min(ZEROS.len() as u64) as usize;
                        self.cur.update(&ZEROS[..n]);
                        left -= n as u64;
                    }
                }
            }
            pos = e;
            if e == r.end() {
                self.finish_one();
            }
        }
    }

    fn finish_one(&mut self) {
        let h = std::mem::replace(&mut self.cur, Sha256::new());
        if let Some(r) = self.ranges.get(self.idx) {
            self.done.push((*r, hex(&h.finalize())));
        }
        self.idx += 1;
    }

    /// All range hashes (ranges never fed hash as empty input would not be right: callers
    /// feed the whole image first).
    pub fn finish(mut self) -> Vec<(Extent, String)> {
        while self.idx < self.ranges.len() {
            self.finish_one();
        }
        self.done
    }
}

/// Feed zeros to a SHA-256.
pub fn hash_zeros(h: &mut Sha256, mut len: u64) {
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..n]);
        len -= n as u64;
    }
}

/// A [`PhaseTiming`] for a pipeline stage: `pipeline/<name>`.
pub fn stage(name: &str, d: Duration, bytes: u64) -> PhaseTiming {
    let secs = d.as_secs_f64();
    PhaseTiming {
        name: format!("pipeline/{name}"),
        seconds: secs,
        bytes,
        bytes_per_second: (secs > 0.0 && bytes > 0).then(|| bytes as f64 / secs),
    }
}

/// Where one stage thread spent its time: working, waiting for input, waiting for the next
/// stage to take its output.
#[derive(Debug, Default, Clone, Copy)]
struct Clock {
    busy: Duration,
    wait_in: Duration,
    wait_out: Duration,
    bytes: u64,
}

impl Clock {
    fn report(&self, name: &str, out: &mut Vec<PhaseTiming>) {
        out.push(stage(name, self.busy, self.bytes));
        out.push(stage(&format!("{name} waiting for input"), self.wait_in, 0));
        out.push(stage(
            &format!("{name} waiting for the next stage"),
            self.wait_out,
            0,
        ));
    }
}

/// Receive the next chunk, counting the wait.
fn recv_timed<T>(rx: &Receiver<T>, c: &mut Clock) -> Option<T> {
    let t = Instant::now();
    let r = rx.recv().ok();
    c.wait_in += t.elapsed();
    r
}

/// Pass a chunk on, counting the wait; false when the next stage has stopped.
fn send_timed<T>(tx: &SyncSender<T>, v: T, c: &mut Clock) -> bool {
    let t = Instant::now();
    let ok = tx.send(v).is_ok();
    c.wait_out += t.elapsed();
    ok
}

/// What the pipeline produced.
pub struct PipelineResult {
    /// SHA-256 of the whole image as streamed (empty when left out).
    pub sha256: String,
    pub ranges: Vec<(Extent, String)>,
    /// Stored bytes and their SHA-256 (streams).
    pub stored: (Option<u64>, Option<String>),
    pub keeper: Option<MapKeeper>,
    /// Bytes that passed through.
    pub bytes: u64,
    /// Where each stage spent its time (`pipeline/...` entries for the manifest).
    pub stages: Vec<PhaseTiming>,
}

/// What the writer thread hands back: bytes written, stored size and hash, the mapfile,
/// its stage timings.
type WriterDone = (
    u64,
    (Option<u64>, Option<String>),
    Option<MapKeeper>,
    Vec<PhaseTiming>,
);

/// The pipeline's input is closed because a later stage stopped (its error comes from
/// [`Pipeline::finish`]).
#[derive(Debug)]
pub struct Stopped;

/// A running pipeline.
pub struct Pipeline {
    tx: Option<SyncSender<Chunk>>,
    pool: Receiver<AlignedBuf>,
    h1: JoinHandle<(String, Clock)>,
    h2: JoinHandle<(Vec<(Extent, String)>, Clock)>,
    w: JoinHandle<Result<WriterDone>>,
    /// Nanoseconds the caller spent blocked in [`Pipeline::send`] (queue full).
    send_wait: AtomicU64,
    /// Buffers allocated because none came back through the pool in time.
    allocated: AtomicU64,
}

impl Pipeline {
    /// Start the stage threads. `ranges` are the ranges to hash separately (the map); when
    /// the map is the whole `size`-byte image (`--all`) its hash is the whole-image hash and
    /// the data is hashed once.
    ///
    /// Zero chunks (unused ranges) cost no reading: the hash thread hashes their zeros while
    /// the caller goes on reading the next used range, up to `queue` chunks ahead.
    pub fn start(
        queue: usize,
        size: u64,
        ranges: Vec<Extent>,
        sink: Box<dyn Sink>,
        keeper: Option<MapKeeper>,
    ) -> Result<Pipeline> {
        Self::start_with(queue, size, ranges, sink, keeper, true)
    }

    /// [`Pipeline::start`], with the whole-image SHA-256 left out when `whole_hash` is false
    /// (`clone`: nobody reads it, and on a mostly empty disk it would cost a hash of every
    /// unused byte); [`PipelineResult::sha256`] is then empty.
    pub fn start_with(
        queue: usize,
        size: u64,
        ranges: Vec<Extent>,
        mut sink: Box<dyn Sink>,
        mut keeper: Option<MapKeeper>,
        whole_hash: bool,
    ) -> Result<Pipeline> {
        let queue = queue.max(1);
        let (tx, rx0) = sync_channel::<Chunk>(queue);
        let (tx1, rx1) = sync_channel::<Chunk>(queue);
        let (tx2, rx2) = sync_channel::<Chunk>(queue);
        let (ptx, pool) = sync_channel::<AlignedBuf>(queue * 3 + 4);
        // With the whole image as the one range, the hash thread feeds the writer directly.
        let whole_map = ranges.len() == 1 && ranges[0] == Extent::new(0, size);
        let (sha_out, range_io) = if whole_map {
            (tx2, None)
        } else {
            (tx1, Some((rx1, tx2)))
        };
        let h1 = std::thread::Builder::new()
            .name("lifeboat-sha".into())
            .spawn(move || {
                let mut h = Sha256::new();
                let mut c = Clock::default();
                while let Some(ch) = recv_timed(&rx0, &mut c) {
                    let t = Instant::now();
                    match &ch.payload {
                        _ if !whole_hash => {}
                        Payload::Data(b, n) => h.update(b.get(*n)),
                        Payload::Zero(n) => hash_zeros(&mut h, *n),
                    }
                    c.busy += t.elapsed();
                    c.bytes += ch.len();
                    if !send_timed(&sha_out, ch, &mut c) {
                        break;
                    }
                }
                let sha = if whole_hash {
                    hex(&h.finalize())
                } else {
                    String::new()
                };
                (sha, c)
            })
            .context("starting the hash thread")?;
        let h2 = std::thread::Builder::new()
            .name("lifeboat-rangesha".into())
            .spawn(move || {
                let mut c = Clock::default();
                let Some((rx1, tx2)) = range_io else {
                    let r = ranges.into_iter().map(|e| (e, String::new())).collect();
                    return (r, c);
                };
                let mut rh = RangeHasher::new(ranges);
                while let Some(ch) = recv_timed(&rx1, &mut c) {
                    let t = Instant::now();
                    let before = rh.hashed;
                    match &ch.payload {
                        Payload::Data(b, n) => rh.feed(ch.off, *n as u64, Some(b.get(*n))),
                        Payload::Zero(n) => rh.feed(ch.off, *n, None),
                    }
                    c.busy += t.elapsed();
                    c.bytes += rh.hashed - before;
                    if !send_timed(&tx2, ch, &mut c) {
                        break;
                    }
                }
                (rh.finish(), c)
            })
            .context("starting the range hash thread")?;
        let w = std::thread::Builder::new()
            .name("lifeboat-write".into())
            .spawn(move || -> Result<_> {
                let mut bytes = 0u64;
                let mut c = Clock::default();
                let mut map_save = Duration::ZERO;
                while let Some(ch) = recv_timed(&rx2, &mut c) {
                    let len = ch.len();
                    let t = Instant::now();
                    match ch.payload {
                        Payload::Data(b, n) => {
                            sink.data(ch.off, b.get(n))
                                .with_context(|| format!("writing the image at byte {}", ch.off))?;
                            c.bytes += n as u64;
                            let _ = ptx.try_send(b);
                        }
                        Payload::Zero(n) => sink
                            .zero(ch.off, n)
                            .with_context(|| format!("writing the image at byte {}", ch.off))?,
                    }
                    c.busy += t.elapsed();
                    bytes += len;
                    if let Some(k) = &mut keeper
                        && !ch.map.is_empty()
                    {
                        for (e, st) in &ch.map {
                            k.map.set(e.start, e.len, *st);
                            k.map.current_pos = e.end();
                        }
                        if k.due() {
                            let t = Instant::now();
                            sink.sync()
                                .context("syncing the image before saving the mapfile")?;
                            k.save()?;
                            map_save += t.elapsed();
                        }
                    }
                }
                let mut stages = Vec::new();
                c.report("write", &mut stages);
                stages.push(stage("mapfile saves", map_save, 0));
                let t = Instant::now();
                sink.sync().context("syncing the image")?;
                if let Some(k) = &mut keeper {
                    k.save()?;
                }
                stages.extend(sink.timings());
                let stored = sink.finish().context("finishing the image")?;
                stages.push(stage("final sync", t.elapsed(), 0));
                Ok((bytes, stored, keeper, stages))
            })
            .context("starting the writer thread")?;
        Ok(Pipeline {
            tx: Some(tx),
            pool,
            h1,
            h2,
            w,
            send_wait: AtomicU64::new(0),
            allocated: AtomicU64::new(0),
        })
    }

    /// A buffer of at least `cap` bytes, recycled when possible.
    pub fn buffer(&self, cap: usize) -> AlignedBuf {
        match self.pool.try_recv() {
            Ok(b) if b.capacity() >= cap => b,
            _ => {
                self.allocated.fetch_add(1, Ordering::Relaxed);
                AlignedBuf::new(cap)
            }
        }
    }

    /// Queue a chunk. Fails when a later stage has stopped (its error comes from `finish`).
    pub fn send(&self, c: Chunk) -> Result<(), Stopped> {
        let t = Instant::now();
        let r = match &self.tx {
            Some(tx) => tx.send(c).map_err(|_| Stopped),
            None => Err(Stopped),
        };
        self.send_wait
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    /// Close the input and wait for every stage.
    pub fn finish(mut self) -> Result<PipelineResult> {
        self.tx = None;
        let (sha256, c1) = self
            .h1
            .join()
            .map_err(|_| anyhow!("the hash thread panicked"))?;
        let (mut ranges, c2) = self
            .h2
            .join()
            .map_err(|_| anyhow!("the range hash thread panicked"))?;
        for (_, h) in &mut ranges {
            if h.is_empty() {
                h.clone_from(&sha256);
            }
        }
        let (bytes, stored, keeper, wstages) = self
            .w
            .join()
            .map_err(|_| anyhow!("the writer thread panicked"))??;
        let mut stages = vec![
            stage(
                "reader waiting for the hash stage",
                Duration::from_nanos(self.send_wait.load(Ordering::Relaxed)),
                0,
            ),
            stage(
                &format!(
                    "buffers allocated: {}",
                    self.allocated.load(Ordering::Relaxed)
                ),
                Duration::ZERO,
                0,
            ),
        ];
        c1.report("sha256 whole image", &mut stages);
        c2.report("sha256 per range", &mut stages);
        stages.extend(wstages);
        Ok(PipelineResult {
            sha256,
            ranges,
            stored,
            keeper,
            bytes,
            stages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_hasher_matches_direct_hashes() {
        let img: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
        let ranges = vec![
            Extent::new(0, 4096),
            Extent::new(10_000, 20_000),
            Extent::new(49_000, 1000),
        ];
        let mut rh = RangeHasher::new(ranges.clone());
        // Odd chunking, with one zero chunk inside a range.
        let mut zeroed = img.clone();
        zeroed[12_000..13_000].fill(0);
        let mut off = 0u64;
        for n in [3000u64, 5000, 4000, 1000, 37_000] {
            if off == 12_000 {
                rh.feed(off, n, None);
            } else {
                rh.feed(off, n, Some(&zeroed[off as usize..(off + n) as usize]));
            }
            off += n;
        }
        let got = rh.finish();
        assert_eq!(got.len(), 3);
        for (e, h) in got {
            let want = hex(&Sha256::digest(&zeroed[e.start as usize..e.end() as usize]));
            assert_eq!(h, want, "{e:?}");
        }
    }

    #[test]
    fn sparse_writes_leave_holes_and_keep_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let f = File::create(&p).unwrap();
        let mut b = vec![0u8; 5 * 4096 + 100];
        b[4096] = 1;
        b[5 * 4096 + 99] = 2;
        write_sparse(&f, 8192, &b).unwrap();
        f.set_len(8192 + b.len() as u64).unwrap();
        let back = std::fs::read(&p).unwrap();
        assert_eq!(&back[8192..], &b[..]);
    }
}
