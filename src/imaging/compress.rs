//! Output formats of `lifeboat image` and their encoders: raw (sparse file), zstd
//! (libzstd's own worker threads), gzip (independent members compressed in parallel, as
//! `pigz` does: any gunzip reads the concatenation) and xz (lzma-rust2's multithreaded block
//! encoder; slow, about 3 MB/s per core).
//!
//! The format comes from the output name (`.img`, `.img.zst`, `.img.gz`, `.img.xz`) unless
//! given; stdout defaults to raw.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Raw disk image (sparse when written to a file)
    Raw,
    /// zstd, multithreaded
    Zstd,
    /// gzip, parallel members
    Gzip,
    /// xz (slow: ~3 MB/s per core)
    Xz,
}

impl Format {
    /// From a file name: `.zst`/`.zstd`, `.gz`, `.xz`, else raw.
    pub fn from_name(name: &str) -> Format {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".zst") || n.ends_with(".zstd") {
            Format::Zstd
        } else if n.ends_with(".gz") {
            Format::Gzip
        } else if n.ends_with(".xz") {
            Format::Xz
        } else {
            Format::Raw
        }
    }
    /// Name used in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
        }
    }
    /// Default compression level.
    pub fn default_level(self) -> i32 {
        match self {
            Format::Raw => 0,
            Format::Zstd => 3,
            Format::Gzip => 6,
            Format::Xz => 3,
        }
    }
}

/// A compressing writer that must be finished to complete the stream.
pub trait Encoder: Write + Send {
    /// Flush everything, end the stream.
    fn finish_stream(self: Box<Self>) -> io::Result<()>;
}

struct ZstdEnc<W: Write + Send>(zstd::stream::write::Encoder<'static, W>);
impl<W: Write + Send> Write for ZstdEnc<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write + Send> Encoder for ZstdEnc<W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.flush()
    }
}

struct XzEnc<W: Write + Send>(lzma_rust2::XzWriterMt<W>);
impl<W: Write + Send> Write for XzEnc<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write + Send> Encoder for XzEnc<W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.flush()
    }
}

/// Build the encoder for `format` (not raw) over `w`, with `threads` workers.
pub fn encoder<W: Write + Send + 'static>(
    format: Format,
    w: W,
    level: i32,
    threads: u32,
) -> io::Result<Box<dyn Encoder>> {
    let threads = threads.max(1);
    Ok(match format {
        Format::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(w, level)?;
            if threads > 1 {
                e.multithread(threads)?;
            }
            e.include_checksum(true)?;
            Box::new(ZstdEnc(e))
        }
        Format::Gzip => Box::new(ParGz::new(w, level.clamp(0, 9) as u32, threads as usize)),
        Format::Xz => {
            let mut o = lzma_rust2::XzOptions::with_preset(level.clamp(0, 9) as u32);
            o.set_block_size(NonZeroU64::new(8 << 20));
            Box::new(XzEnc(lzma_rust2::XzWriterMt::new(w, o, threads)?))
        }
        Format::Raw => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "raw output has no encoder",
            ));
        }
    })
}

/// Input bytes per gzip member.
const GZ_BLOCK: usize = 4 << 20;

/// Parallel gzip: the input is cut into [`GZ_BLOCK`]-byte pieces, each compressed as a
/// complete gzip member on a worker thread; members are written in order. The result is a
/// multi-member gzip file (RFC 1952 §2.2), which `gunzip`, `zcat` and flate2's
/// `MultiGzDecoder` read as one stream.
pub struct ParGz<W: Write> {
    out: W,
    level: u32,
    buf: Vec<u8>,
    next_seq: u64,
    next_out: u64,
    jobs: Option<SyncSender<(u64, Vec<u8>)>>,
    results: Receiver<(u64, io::Result<Vec<u8>>)>,
    pending: BTreeMap<u64, io::Result<Vec<u8>>>,
    in_flight: usize,
    max_in_flight: usize,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParGz<W> {
    pub fn new(out: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (jtx, jrx) = sync_channel::<(u64, Vec<u8>)>(threads);
        let jrx = std::sync::Arc::new(std::sync::Mutex::new(jrx));
        let (rtx, rrx) = sync_channel(threads * 2);
        let mut workers = Vec::new();
        for _ in 0..threads {
            let jrx = std::sync::Arc::clone(&jrx);
            let rtx = rtx.clone();
            let h = std::thread::Builder::new()
                .name("lifeboat-gzip".into())
                .spawn(move || {
                    loop {
                        let job = match jrx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok((seq, data)) = job else { return };
                        let mut e = flate2::write::GzEncoder::new(
                            Vec::with_capacity(data.len() / 2),
                            flate2::Compression::new(level),
                        );
                        let r = e.write_all(&data).and_then(|_| e.finish());
                        if rtx.send((seq, r)).is_err() {
                            return;
                        }
                    }
                });
            if let Ok(h) = h {
                workers.push(h);
            }
        }
        ParGz {
            out,
            level,
            buf: Vec::with_capacity(GZ_BLOCK),
            next_seq: 0,
            next_out: 0,
            jobs: Some(jtx),
            results: rrx,
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: threads * 2,
            workers,
        }
    }

    fn drain_ready(&mut self) -> io::Result<()> {
        while let Some(r) = self.pending.remove(&self.next_out) {
            self.out.write_all(&r?)?;
            self.next_out += 1;
        }
        Ok(())
    }

    fn receive_one(&mut self) -> io::Result<()> {
        let (seq, r) = self
            .results
            .recv()
            .map_err(|_| io::Error::other("gzip workers stopped"))?;
        self.in_flight -= 1;
        self.pending.insert(seq, r);
        self.drain_ready()
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(GZ_BLOCK));
        if self.workers.is_empty() {
            // No threads could be started: compress here.
            let mut e =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(self.level));
            e.write_all(&data)?;
            return self.out.write_all(&e.finish()?);
        }
        while self.in_flight >= self.max_in_flight {
            self.receive_one()?;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?
            .send((seq, data))
            .map_err(|_| io::Error::other("gzip workers stopped"))?;
        self.in_flight += 1;
        Ok(())
    }
}

impl<W: Write> Write for ParGz<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = b.len().min(GZ_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() >= GZ_BLOCK {
            self.submit()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write + Send> Encoder for ParGz<W> {
    fn finish_stream(mut self: Box<Self>) -> io::Result<()> {
        self.submit()?;
        while self.in_flight > 0 {
            self.receive_one()?;
        }
        if self.next_seq == 0 && self.next_out == 0 {
            // Empty input still makes one valid (empty) member.
            let e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(self.level));
            self.out.write_all(&e.finish()?)?;
        }
        self.jobs = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i * 7 + i / 4096) % 253) as u8).collect()
    }

    fn round_trip(f: Format, n: usize) -> Vec<u8> {
        let out = Shared::default();
        let mut e = encoder(f, out.clone(), f.default_level(), 2).unwrap();
        let d = data(n);
        for c in d.chunks(100_003) {
            e.write_all(c).unwrap();
        }
        e.finish_stream().unwrap();
        let z = out.0.lock().unwrap().clone();
        let mut back = Vec::new();
        match f {
            Format::Gzip => {
                flate2::read::MultiGzDecoder::new(&z[..])
                    .read_to_end(&mut back)
                    .unwrap();
            }
            Format::Zstd => back = zstd::stream::decode_all(&z[..]).unwrap(),
            Format::Xz => {
                lzma_rust2::XzReader::new(&z[..], true)
                    .read_to_end(&mut back)
                    .unwrap();
            }
            Format::Raw => unreachable!(),
        }
        assert_eq!(back.len(), n, "{f:?}");
        assert!(back == d, "{f:?} content differs");
        z
    }

    #[test]
    fn every_encoder_round_trips_odd_sizes() {
        for f in [Format::Gzip, Format::Zstd, Format::Xz] {
            for n in [0, 1, 4095, GZ_BLOCK + 513, 2 * GZ_BLOCK] {
                round_trip(f, n);
            }
        }
    }

    #[test]
    fn names() {
        assert_eq!(Format::from_name("a.img.zst"), Format::Zstd);
        assert_eq!(Format::from_name("a.IMG.GZ"), Format::Gzip);
        assert_eq!(Format::from_name("a.img.xz"), Format::Xz);
        assert_eq!(Format::from_name("a.img"), Format::Raw);
        assert_eq!(Format::from_name("-"), Format::Raw);
    }
}
