//! The clone engine: `image` and `flash` in one streamed run, disk to disk.
//!
//! A producer thread runs the imaging read side over the source's used ranges: the rescue
//! reader ([`crate::imaging::rescue::Rescuer::copy_stream`] in its in-place mode, so a failed
//! read is split into pieces and sectors, each retried, and unreadable sectors become zeros)
//! feeding the imaging [`Pipeline`] (per-range SHA-256 and the ddrescue mapfile; no
//! whole-image hash: nobody reads it, and it would hash every unused byte). The
//! pipeline's sink is a bounded channel; on this side a [`Read`] turns the chunks back into the
//! logical byte stream of the source (zeros between used ranges, produced on the fly) and
//! becomes the [`ImageInput`] of a [`crate::flash::write::Job`] whose map is the used ranges.
//! The flash engine then does what it does for an image: writes, fits the tables to the target
//! (`--grow`), reads everything back with `O_DIRECT`, rewrites mismatches (re-reading the
//! source disk for them), writes the first MiB last, and wipes the target's tables on any
//! failure.
//!
//! The source is only ever opened read-only.

use crate::flash::write::{self, FlashReport, HEAD, Job, Target};
use crate::imaging::mapfile::{Mapfile, Status};
use crate::imaging::pipeline::{MapKeeper, Pipeline, Sink};
use crate::imaging::ranges::{self, Extent};
use crate::imaging::reader::{ReadOptions, SourceReader};
use crate::imaging::rescue::{Pass1, Progress, RescueOptions, Rescuer};
use crate::verify::input::ImageInput;
use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant, SystemTime};

/// Chunks in flight between the source reader and the flash engine.
const QUEUE: usize = 8;

/// What to clone and how.
pub struct CloneJob<'a> {
    /// The source disk (or, in unit tests, a file), opened read-only here.
    pub source: PathBuf,
    pub source_size: u64,
    /// Logical sector size of the source.
    pub sector: u32,
    pub is_device: bool,
    /// Byte ranges to copy, sorted and disjoint (the used ranges, cut to the target's size).
    pub used: Vec<Extent>,
    pub read: ReadOptions,
    /// Retries of each unreadable source sector.
    pub read_retries: u32,
    /// Rewrites of a range that reads back wrong on the target.
    pub retries: u32,
    pub grow: bool,
    /// Where to keep the ddrescue mapfile of the source read (None: in memory only).
    pub mapfile: Option<PathBuf>,
    /// The command line, for the mapfile's header.
    pub command: String,
    pub stop: &'a AtomicBool,
    /// Read side (source) and write side (target) progress.
    pub read_progress: &'a Progress,
    pub write_progress: &'a Progress,
    pub warn: &'a mut dyn FnMut(&str),
}

/// What the read side of a clone did.
#[derive(Debug, Clone, Serialize)]
pub struct ReadReport {
    /// Bytes of the source read (the used ranges).
    pub bytes_read: u64,
    /// Unreadable sectors, zero-filled on the target.
    pub bad_ranges: Vec<Extent>,
    pub bad_bytes: u64,
    /// Failed reads (including the ones a smaller read or a retry then rescued).
    pub read_errors: u64,
    /// Sector re-reads.
    pub retried: u64,
    pub timeouts: u64,
    pub reopens: u64,
    /// SHA-256 of the used ranges as read, one per range (bad sectors as zeros).
    pub range_sha256: Vec<(Extent, String)>,
    pub direct_io: bool,
    pub seconds: f64,
}

/// What a finished clone did.
pub struct CloneReport {
    pub read: ReadReport,
    pub flash: FlashReport,
}

/// What travels from the pipeline's sink to the stream reader.
enum Msg {
    Data(u64, Vec<u8>),
    End,
    Fail(String),
}

/// The pipeline's last stage: hands the bytes on instead of storing them. Unused ranges send
/// nothing; the reader makes their zeros.
struct ChannelSink {
    tx: SyncSender<Msg>,
}

impl Sink for ChannelSink {
    fn data(&mut self, off: u64, b: &[u8]) -> io::Result<()> {
        self.tx.send(Msg::Data(off, b.to_vec())).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the target side stopped taking data",
            )
        })
    }
    fn zero(&mut self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn finish(self: Box<Self>) -> io::Result<(Option<u64>, Option<String>)> {
        // The end (or the failure) is announced by the producer once the rescuer has said
        // whether it read everything: an interrupted read must not look like a short source.
        Ok((None, None))
    }
}

/// The source disk as one byte stream: chunks from the channel at their offsets, zeros in
/// between; ends at the end of the last used range.
struct StreamReader {
    rx: Receiver<Msg>,
    pos: u64,
    /// Current chunk: offset, bytes, bytes already handed out.
    cur: Option<(u64, Vec<u8>, usize)>,
    ended: bool,
}

impl StreamReader {
    fn new(rx: Receiver<Msg>) -> Self {
        StreamReader {
            rx,
            pos: 0,
            cur: None,
            ended: false,
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.cur.is_none() && !self.ended {
            match self.rx.recv() {
                Ok(Msg::Data(off, v)) => {
                    if off < self.pos {
                        return Err(io::Error::other(format!(
                            "internal: source chunk at byte {off} arrived after byte {}",
                            self.pos
                        )));
                    }
                    self.cur = Some((off, v, 0));
                }
                Ok(Msg::End) => self.ended = true,
                Ok(Msg::Fail(why)) => return Err(io::Error::other(why)),
                Err(_) => return Err(io::Error::other("the source reader stopped")),
            }
        }
        let Some((off, v, used)) = self.cur.as_mut() else {
            return Ok(0);
        };
        let next = *off + *used as u64;
        if self.pos < next {
            // A gap between used ranges: zeros.
            let n = ((next - self.pos).min(buf.len() as u64)) as usize;
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let n = (v.len() - *used).min(buf.len());
        buf[..n].copy_from_slice(&v[*used..*used + n]);
        *used += n;
        self.pos += n as u64;
        if *used == v.len() {
            self.cur = None;
        }
        Ok(n)
    }
}

/// The rescue knobs `image` uses, for a source of `size` bytes.
fn rescue_options(size: u64, sector: u32, retries: u32) -> RescueOptions {
    let sector = u64::from(sector.max(512));
    let skip_min = (size / 100_000).max(64 << 10) / sector * sector;
    RescueOptions {
        chunk: (1 << 20) / sector as usize * sector as usize,
        retries,
        trim: true,
        scrape: true,
        skip_min,
        skip_max: (size / 100).max(skip_min) / sector * sector,
    }
}

/// Read the used ranges of the source through the rescue reader into `tx`.
#[allow(clippy::too_many_arguments)]
fn produce(
    src: &Path,
    size: u64,
    sector: u32,
    is_device: bool,
    used: &[Extent],
    read: ReadOptions,
    retries: u32,
    keeper: MapKeeper,
    progress: &Progress,
    stop: &AtomicBool,
    tx: SyncSender<Msg>,
) -> Result<(ReadReport, MapKeeper)> {
    let t = Instant::now();
    let reader = SourceReader::open(src, size, sector, is_device, read)?;
    let direct = reader.direct();
    let opts = rescue_options(size, reader.sector(), retries);
    let mut rescuer = Rescuer::new(reader, opts, progress, stop);
    let end = used.last().map(|e| e.end()).unwrap_or(0);
    // No whole-image SHA-256: the clone reports per-range hashes only, and hashing the
    // zeros of every unused byte would cost more than reading the used ones on a fast disk.
    let pipe = Pipeline::start_with(
        QUEUE,
        end,
        used.to_vec(),
        Box::new(ChannelSink { tx }),
        Some(keeper),
        false,
    )?;
    let p1 = rescuer.copy_stream(end, used, &pipe, true);
    let res = pipe.finish();
    let (p1, r) = match (p1, res) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    if p1 == Pass1::Interrupted {
        return Err(anyhow!("interrupted (Ctrl-C or a termination signal)"));
    }
    let keeper = r
        .keeper
        .context("internal: the mapfile was lost in the pipeline")?;
    let bad_ranges = keeper.map.ranges_in(Status::BadSector, used);
    Ok((
        ReadReport {
            bytes_read: ranges::total(used),
            bad_bytes: ranges::total(&bad_ranges),
            bad_ranges,
            read_errors: rescuer.read_errors,
            retried: rescuer.retried,
            timeouts: rescuer.reader.stats.timeouts,
            reopens: rescuer.reader.stats.reopens,
            range_sha256: r.ranges,
            direct_io: direct,
            seconds: (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        },
        keeper,
    ))
}

/// Clone the source onto `target`. On failure the target's partition tables are wiped (the
/// flash engine's rule) and the error says so.
pub fn clone(job: CloneJob<'_>, target: &Target) -> Result<CloneReport> {
    let CloneJob {
        source,
        source_size,
        sector,
        is_device,
        used,
        read,
        read_retries,
        retries,
        grow,
        mapfile,
        command,
        stop,
        read_progress,
        write_progress,
        warn,
    } = job;
    let used = ranges::normalize(used);
    let mut map = Mapfile::new(source_size);
    map.notes.push(format!(
        "clone of {} ({source_size} bytes) to {}",
        source.display(),
        target.path.display()
    ));
    let keeper = MapKeeper {
        map,
        path: mapfile,
        command,
        started: SystemTime::now(),
        interval: Duration::from_secs(30),
        last_save: Instant::now(),
    };
    let (tx, rx) = sync_channel::<Msg>(QUEUE);
    let fail_tx = tx.clone();
    std::thread::scope(|sc| {
        let src = source.as_path();
        let used_p = used.as_slice();
        let producer = sc.spawn(move || {
            let r = produce(
                src,
                source_size,
                sector,
                is_device,
                used_p,
                read,
                read_retries,
                keeper,
                read_progress,
                stop,
                tx,
            );
            // The reader may be gone already (the flash engine stops after the last used
            // range, or failed): then nobody needs to know.
            let _ = fail_tx.send(match &r {
                Ok(_) => Msg::End,
                Err(e) => Msg::Fail(format!("{e:#}")),
            });
            drop(fail_tx);
            r
        });
        let flashed = (|| -> Result<FlashReport> {
            let mut input =
                ImageInput::from_reader(&source, source_size, Box::new(StreamReader::new(rx)));
            let want = HEAD.min(used.last().map(|e| e.end()).unwrap_or(0)) as usize;
            let mut head = vec![0u8; want];
            let n = input.fill(&mut head)?;
            head.truncate(n);
            let map: Vec<(Extent, Option<String>)> = used.iter().map(|e| (*e, None)).collect();
            write::flash(
                Job {
                    input,
                    head,
                    map: Some(map),
                    image_size: Some(source_size),
                    grow,
                    retries,
                    stop,
                    progress: write_progress,
                    warn,
                },
                target,
            )
        })();
        if flashed.is_err() {
            // The producer may be blocked handing over a chunk nobody reads any more: the
            // reader side is gone, so its sends fail and it ends.
            stop.store(true, Ordering::Relaxed);
        }
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the source reader thread panicked")));
        match (flashed, produced) {
            (Ok(flash), Ok((read, keeper))) => {
                drop(keeper);
                Ok(CloneReport { read, flash })
            }
            (Err(e), _) => Err(e.context(format!(
                "clone of {} to {} failed",
                source.display(),
                target.path.display()
            ))),
            (Ok(_), Err(e)) => Err(e.context(format!(
                "{}: reading the source failed after the target was written; do not trust \
                 the target",
                source.display()
            ))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u8).wrapping_mul(29) ^ (i >> 11) as u8) | 1)
            .collect()
    }

    #[test]
    fn stream_reader_fills_gaps_with_zeros() {
        let (tx, rx) = sync_channel(4);
        tx.send(Msg::Data(10, vec![1, 2, 3])).unwrap();
        tx.send(Msg::Data(20, vec![4])).unwrap();
        tx.send(Msg::End).unwrap();
        let mut r = StreamReader::new(rx);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let mut want = vec![0u8; 21];
        want[10..13].copy_from_slice(&[1, 2, 3]);
        want[20] = 4;
        assert_eq!(out, want);

        let (tx, rx) = sync_channel(4);
        tx.send(Msg::Data(0, vec![1])).unwrap();
        tx.send(Msg::Fail("source gone".into())).unwrap();
        let mut r = StreamReader::new(rx);
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("source gone"));

        let (tx, rx) = sync_channel::<Msg>(1);
        drop(tx);
        assert!(StreamReader::new(rx).read(&mut [0u8; 4]).is_err());
    }

    #[test]
    fn clone_a_file_onto_a_bigger_file() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src.img");
        let data = pattern(6 << 20);
        std::fs::write(&src, &data).unwrap();
        let tgt = d.path().join("tgt.img");
        std::fs::write(&tgt, vec![0x5Au8; 9 << 20]).unwrap();
        let t = Target::open(&tgt, None).unwrap();
        let used = vec![
            Extent::new(0, HEAD + 8192),
            Extent::new(3 << 20, 5 * 4096),
            Extent::new((6 << 20) - 4096, 4096),
        ];
        let stop = AtomicBool::new(false);
        let (rp, wp) = (Progress::default(), Progress::default());
        let mut w = |_: &str| {};
        let mapfile = d.path().join("src.map");
        let r = clone(
            CloneJob {
                source: src.clone(),
                source_size: data.len() as u64,
                sector: 512,
                is_device: false,
                used: used.clone(),
                read: ReadOptions {
                    direct: false,
                    timeout: None,
                    max_rate: None,
                    reopen_wait: Duration::from_secs(1),
                },
                read_retries: 1,
                retries: 1,
                grow: false,
                mapfile: Some(mapfile.clone()),
                command: "test".into(),
                stop: &stop,
                read_progress: &rp,
                write_progress: &wp,
                warn: &mut w,
            },
            &t,
        )
        .unwrap();
        let got = std::fs::read(&tgt).unwrap();
        for e in &used {
            let (s, e) = (e.start as usize, e.end() as usize);
            assert_eq!(&got[s..e], &data[s..e], "range {s}..{e}");
        }
        // Unused bytes of the target are left alone (outside the zeroed first/last MiB).
        assert_eq!(got[(3 << 20) - 1], 0x5A);
        assert!(r.read.bad_ranges.is_empty());
        assert_eq!(r.read.bytes_read, ranges::total(&used));
        assert!(r.flash.mismatches.is_empty());
        assert_eq!(r.read.range_sha256.len(), used.len());
        let m = std::fs::read_to_string(&mapfile).unwrap();
        assert!(m.contains("clone of"), "{m}");
    }
}
