//! Seed maker for the fuzz corpora (run by `fuzz/seeds.sh`, not a fuzz target).
//!
//! ```text
//! mkseed traced IMAGE OUT    # sparse seed of exactly the sectors `inspect` reads from IMAGE
//! mkseed sparse FILE OUT [OFFSET LEN]
//!                            # sparse seed of the non-zero sectors of FILE (or of its
//!                            # window [OFFSET, OFFSET+LEN) as a disk of its own)
//! mkseed cut FILE OUT OFFSET LEN [trim]
//!                            # raw bytes [OFFSET, OFFSET+LEN) of FILE; with `trim`,
//!                            # trailing zeros cut off (to a 4 KiB multiple)
//! mkseed check SEED...      # decode sparse seeds and print what `inspect` makes of them
//! mkseed parts IMAGE         # print "NUMBER START_BYTES SIZE_BYTES FS NAME" per partition
//! ```
//!
//! `traced-table IMAGE OUT` is `traced` for `read_table` alone.
//!
//! `traced` runs `inspect_reader` at full depth over the image with a reader that records
//! every 512-byte sector read, then writes those sectors (skipping all-zero ones) in the
//! sparse format of `lifeboat_fuzz::SparseImage`: a seed of a few hundred KiB that takes the
//! pipeline down the same paths as the 150 MiB image.

use lifeboat::haos::view::{Depth, SourceView, inspect_reader};
use lifeboat::io::source::SourceKind;
use lifeboat::io::{FileReader, ReadAt, Window};
use lifeboat::table;
use lifeboat_fuzz::{SECTOR, SparseImage};
use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

/// A reader that remembers which sectors were read.
struct Tracer {
    inner: FileReader,
    seen: Mutex<BTreeSet<u64>>,
}

impl ReadAt for Tracer {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)?;
        if !buf.is_empty() {
            let last = (offset + buf.len() as u64 - 1) / SECTOR;
            let mut seen = self.seen.lock().expect("tracer lock");
            seen.extend(offset / SECTOR..=last);
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

fn open(path: &str) -> (File, u64) {
    let f = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let len = f.metadata().expect("stat").len();
    (f, len)
}

fn read_range(f: &File, off: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    f.read_exact_at(&mut v, off).expect("read");
    v
}

/// Coalesce sectors into extents of their non-zero data, reading from `f` at `base`.
fn extents(f: &File, base: u64, sectors: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u8>)> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    for s in sectors {
        let data = read_range(f, base + s * SECTOR, SECTOR);
        if data.iter().all(|b| *b == 0) {
            continue;
        }
        match out.last_mut() {
            Some((start, d)) if *start + d.len() as u64 == s * SECTOR => d.extend(data),
            _ => out.push((s * SECTOR, data)),
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        [mode @ ("traced" | "traced-table"), image, out] => {
            let (f, len) = open(image);
            let tracer = Arc::new(Tracer {
                inner: FileReader::new(f.try_clone().expect("dup"), len),
                seen: Mutex::new(BTreeSet::new()),
            });
            let verdict = if *mode == "traced" {
                let view = SourceView {
                    path: image.to_string(),
                    kind: SourceKind::ImageFile,
                    size: len,
                    sector_size: 512,
                };
                let rep = inspect_reader(tracer.clone(), view, Depth::Full);
                rep.as_ref().map(|r| r.verdict_name()).unwrap_or("error")
            } else {
                match table::read_table(&*tracer, 512) {
                    Ok(_) => "table",
                    Err(_) => "no table",
                }
            };
            let seen = tracer.seen.lock().expect("tracer lock").clone();
            let ext = extents(&f, 0, seen.iter().copied());
            let enc = SparseImage::encode(len, 512, &ext);
            std::fs::write(out, &enc).expect("write");
            eprintln!(
                "{out}: {} sectors read, {} extents, {} bytes ({verdict})",
                seen.len(),
                ext.len(),
                enc.len()
            );
        }
        ["check", seeds @ ..] => {
            for seed in seeds {
                let img = SparseImage::decode(&std::fs::read(seed).expect("read seed"));
                let view = SourceView {
                    path: seed.to_string(),
                    kind: SourceKind::ImageFile,
                    size: img.len(),
                    sector_size: img.sector_size(),
                };
                match inspect_reader(Arc::new(img), view, Depth::Full) {
                    Ok(r) => println!(
                        "{seed}: {} os {:?} board {:?} data {} problems {}",
                        r.verdict_name(),
                        r.os_version,
                        r.board.as_ref().map(|b| b.id.clone()),
                        r.data.is_some(),
                        r.problems.len()
                    ),
                    Err(e) => println!("{seed}: error {e:#}"),
                }
            }
        }
        ["parts", image] => {
            let (f, len) = open(image);
            let r = FileReader::new(f, len);
            let t = table::read_table(&r, 512).expect("partition table");
            for p in &t.partitions {
                let (start, size) = (p.start_bytes(t.sector_size), p.size_bytes(t.sector_size));
                let fs = lifeboat::fs::probe(&Window::new(&r, start, size))
                    .ok()
                    .flatten()
                    .map_or("-", |f| lifeboat::fs::fs_name(&f.kind));
                println!(
                    "{} {start} {size} {fs} {}",
                    p.number,
                    p.name.as_deref().unwrap_or(&p.type_id)
                );
            }
        }
        ["sparse", file, out, rest @ ..] => {
            let (f, flen) = open(file);
            let (off, len) = match rest {
                [] => (0, flen),
                [o, l] => (o.parse().expect("offset"), l.parse().expect("length")),
                _ => panic!("sparse FILE OUT [OFFSET LEN]"),
            };
            let ext = extents(&f, off, 0..len.div_ceil(SECTOR));
            std::fs::write(out, SparseImage::encode(len, 512, &ext)).expect("write");
        }
        ["cut", file, out, off, len, trim @ ..] => {
            let (f, flen) = open(file);
            let off: u64 = off.parse().expect("offset");
            let len: u64 = len.parse::<u64>().expect("length").min(flen - off);
            let mut v = read_range(&f, off, len);
            if trim == ["trim"] {
                let used = v.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
                v.truncate(used.div_ceil(4096) * 4096);
            }
            std::fs::write(out, v).expect("write");
        }
        _ => {
            eprintln!(
                "usage: mkseed traced|traced-table IMAGE OUT | sparse FILE OUT [OFFSET LEN] | cut FILE OUT OFFSET LEN [trim] | check SEED... | parts IMAGE"
            );
            std::process::exit(2);
        }
    }
}
