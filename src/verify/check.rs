//! `verify`: one sequential pass over an image (decompressed on the fly) that checks it
//! against what was recorded — the manifest's per-range and whole-image SHA-256, a bmap's
//! per-range checksums, a published SHA-256 (of the image or of the file as stored) — and
//! optionally compares a device (or another raw image) with it, byte for byte, over the
//! mapped ranges only. Every mismatch is reported by offset and by partition.

use super::bmap::{Bmap, hex};
use super::input::ImageInput;
use super::manifest::Manifest;
use crate::imaging::pipeline::RangeHasher;
use crate::imaging::ranges::{self, Extent};
use crate::imaging::reader::AlignedBuf;
use crate::table::PartitionTable;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes per read of the image stream.
const CHUNK: usize = 4 << 20;
/// Granularity of device mismatches.
const SECTOR: u64 = 512;

/// What to check the image against.
#[derive(Debug, Default)]
pub struct VerifyOptions {
    pub manifest: Option<PathBuf>,
    pub bmap: Option<PathBuf>,
    /// Expected SHA-256, hex (of the decompressed image or of the file as stored).
    pub sha256: Option<String>,
    /// A device (or raw image file) that should hold the image.
    pub against: Option<PathBuf>,
}

/// One check and its result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `manifest-sha256`, `manifest-ranges`, `manifest-size`, `bmap-ranges`, `bmap-size`,
    /// `sha256`, `against`.
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// A range that does not match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// `manifest`, `bmap` (range hash differs) or `against` (device bytes differ).
    pub check: String,
    pub start: u64,
    pub length: u64,
    pub partition: Option<u32>,
    /// GPT name of that partition (`hassos-data`…), when it has one.
    pub partition_name: Option<String>,
    pub partition_offset: Option<u64>,
}

/// The result of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub image: String,
    /// `raw`, `zstd`, `gzip` or `xz`.
    pub format: String,
    /// Bytes of the (decompressed) image.
    pub size: u64,
    pub sha256: String,
    pub file_bytes: u64,
    pub file_sha256: String,
    pub manifest: Option<String>,
    pub bmap: Option<String>,
    pub against: Option<String>,
    /// Bytes compared with `--against`.
    pub bytes_compared: u64,
    pub checks: Vec<Check>,
    pub mismatches: Vec<Mismatch>,
    pub ok: bool,
}

/// Sidecar `IMAGE.manifest.json` / `IMAGE.bmap` when it exists.
pub fn sidecar(image: &Path, suffix: &str) -> Option<PathBuf> {
    let mut s = image.as_os_str().to_owned();
    s.push(suffix);
    let p = PathBuf::from(s);
    p.is_file().then_some(p)
}

/// Normalise a user's hex digest.
fn clean_hex(s: &str) -> Result<String> {
    let h = s.trim().to_ascii_lowercase();
    if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("--sha256 {s:?}: not a SHA-256 (64 hex digits)");
    }
    Ok(h)
}

/// Where a byte offset lies in the image's partition table.
fn locate(table: Option<&PartitionTable>, off: u64) -> (Option<u32>, Option<String>, Option<u64>) {
    let Some(t) = table else {
        return (None, None, None);
    };
    let ss = t.sector_size;
    for p in &t.partitions {
        let s = p.start_bytes(ss);
        if off >= s && off < s.saturating_add(p.size_bytes(ss)) {
            return (Some(p.number), p.name.clone(), Some(off - s));
        }
    }
    (None, None, None)
}

/// The device side of `--against`: O_DIRECT where the file allows it.
struct Target {
    path: PathBuf,
    file: File,
    size: u64,
    direct: bool,
    buf: AlignedBuf,
}

impl Target {
    fn open(path: &Path) -> Result<Self> {
        let plain = || {
            File::open(path).with_context(|| format!("{}: cannot open read-only", path.display()))
        };
        let (file, direct) = match OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_direct())
            .open(path)
        {
            Ok(f) => (f, true),
            Err(_) => (plain()?, false),
        };
        let meta = file
            .metadata()
            .with_context(|| format!("{}: cannot stat", path.display()))?;
        let size = if meta.file_type().is_file() {
            meta.len()
        } else {
            crate::sys::ioctl::size_bytes(&file)
                .with_context(|| format!("{}: cannot read the device size", path.display()))?
        };
        Ok(Target {
            path: path.to_path_buf(),
            file,
            size,
            direct,
            buf: AlignedBuf::new(CHUNK + 2 * 4096),
        })
    }

    /// Read `len` bytes at `off` (through an aligned window when O_DIRECT).
    fn read(&mut self, off: u64, len: usize) -> Result<&[u8]> {
        let a = off & !4095;
        let end = (off + len as u64).div_ceil(4096) * 4096;
        let end = end.min(self.size.div_ceil(4096) * 4096);
        let n = (end - a) as usize;
        let b = self.buf.get_mut(n);
        let mut got = 0;
        while got < n {
            match self.file.read_at(&mut b[got..], a + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if self.direct && e.raw_os_error() == Some(22) => {
                    // EINVAL: this file system does not take O_DIRECT at this size; go buffered.
                    self.file = File::open(&self.path)
                        .with_context(|| format!("{}: cannot reopen", self.path.display()))?;
                    self.direct = false;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "{}: read error at byte {}",
                            self.path.display(),
                            a + got as u64
                        )
                    });
                }
            }
        }
        let s = (off - a) as usize;
        if got < s + len {
            bail!(
                "{}: ends at byte {} before the image's byte {}",
                self.path.display(),
                self.size,
                off + len as u64
            );
        }
        Ok(&self.buf.get(n)[s..s + len])
    }
}

fn libc_o_direct() -> i32 {
    nix::fcntl::OFlag::O_DIRECT.bits()
}

/// Merge sector-level mismatches into ranges.
fn push_merged(v: &mut Vec<Extent>, e: Extent) {
    if let Some(last) = v.last_mut()
        && last.end() == e.start
    {
        last.len += e.len;
        return;
    }
    v.push(e);
}

/// Run the checks. `progress` is called with the bytes of the image read so far.
pub fn verify(
    image: &Path,
    o: &VerifyOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport> {
    let manifest = match &o.manifest {
        Some(p) => Some((p.clone(), Manifest::load(p)?)),
        None => None,
    };
    let bmap = match &o.bmap {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("{}: cannot read the bmap", p.display()))?;
            let b = Bmap::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a usable bmap: {e}", p.display()))?;
            Some((p.clone(), b))
        }
        None => None,
    };
    let want_sha = o.sha256.as_deref().map(clean_hex).transpose()?;
    let mut input = ImageInput::open(image)?;

    // Ranges to hash for each source of truth.
    let m_ranges: Vec<(Extent, String)> = manifest
        .as_ref()
        .map(|(_, m)| {
            m.mapped
                .iter()
                .map(|r| {
                    (
                        Extent::new(r.start, r.length),
                        r.sha256.to_ascii_lowercase(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut b_ranges: Vec<(Extent, String)> = Vec::new();
    let mut b_unhashed = 0usize;
    let mut b_map: Vec<Extent> = Vec::new();
    if let Some((_, b)) = &bmap {
        let sha = b
            .checksum_type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("sha256"));
        for r in &b.ranges {
            let e = b.extent(r);
            b_map.push(e);
            match (&r.checksum, sha) {
                (Some(c), true) => b_ranges.push((e, c.to_ascii_lowercase())),
                _ => b_unhashed += 1,
            }
        }
    }
    let mut m_hasher = RangeHasher::new(m_ranges.iter().map(|r| r.0).collect());
    let mut b_hasher = RangeHasher::new(b_ranges.iter().map(|r| r.0).collect());

    // What to compare with --against: the mapped ranges, else the whole image.
    let compare_map: Option<Vec<Extent>> = if let Some((_, m)) = &manifest {
        Some(ranges::normalize(
            m.mapped
                .iter()
                .map(|r| Extent::new(r.start, r.length))
                .collect(),
        ))
    } else if bmap.is_some() {
        Some(ranges::normalize(b_map.clone()))
    } else {
        None
    };
    let mut target = match &o.against {
        Some(p) => Some(Target::open(p)?),
        None => None,
    };
    let mut dev_bad: Vec<Extent> = Vec::new();
    let mut bytes_compared = 0u64;

    let mut whole = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut head: Vec<u8> = Vec::new();
    let mut off = 0u64;
    loop {
        let n = input.fill(&mut buf)?;
        if n == 0 {
            break;
        }
        let data = &buf[..n];
        whole.update(data);
        if head.len() < (1 << 20) {
            let take = ((1usize << 20) - head.len()).min(n);
            head.extend_from_slice(&data[..take]);
        }
        m_hasher.feed(off, n as u64, Some(data));
        b_hasher.feed(off, n as u64, Some(data));
        if let Some(t) = target.as_mut() {
            let here = [Extent::new(off, n as u64)];
            let parts = match &compare_map {
                Some(m) => ranges::intersect(m, &here),
                None => here.to_vec(),
            };
            for e in parts {
                let dev = t.read(e.start, e.len as usize)?;
                let img = &data[(e.start - off) as usize..(e.end() - off) as usize];
                bytes_compared += e.len;
                if dev != img {
                    let mut s = 0usize;
                    while s < img.len() {
                        let l = (SECTOR as usize).min(img.len() - s);
                        if dev[s..s + l] != img[s..s + l] {
                            push_merged(&mut dev_bad, Extent::new(e.start + s as u64, l as u64));
                        }
                        s += l;
                    }
                }
            }
        }
        off += n as u64;
        progress(off);
    }
    let size = off;
    let sha256 = hex(&whole.finalize());
    let file_sha256 = input.stored_sha256()?;
    let table = crate::table::read_table(&head, 512).ok();
    let table = table.as_ref();

    let mut checks = Vec::new();
    let mut mismatches = Vec::new();
    let mism = |check: &str, e: Extent, v: &mut Vec<Mismatch>| {
        let (partition, partition_name, partition_offset) = locate(table, e.start);
        v.push(Mismatch {
            check: check.into(),
            start: e.start,
            length: e.len,
            partition,
            partition_name,
            partition_offset,
        });
    };

    if let Some((_, m)) = &manifest {
        checks.push(Check {
            name: "manifest-size".into(),
            ok: m.image.size == size,
            detail: format!("manifest {} bytes, image {} bytes", m.image.size, size),
        });
        let ok = m.image.sha256.eq_ignore_ascii_case(&sha256);
        checks.push(Check {
            name: "manifest-sha256".into(),
            ok,
            detail: format!("manifest {}, image {}", m.image.sha256, sha256),
        });
        let got = m_hasher.finish();
        let mut bad = 0usize;
        for ((e, want), (_, have)) in m_ranges.iter().zip(got.iter()) {
            if want != have || e.end() > size {
                bad += 1;
                mism("manifest", *e, &mut mismatches);
            }
        }
        checks.push(Check {
            name: "manifest-ranges".into(),
            ok: bad == 0,
            detail: format!("{} of {} ranges differ", bad, m_ranges.len()),
        });
    }
    if let Some((_, b)) = &bmap {
        checks.push(Check {
            name: "bmap-size".into(),
            ok: b.image_size == size,
            detail: format!("bmap {} bytes, image {} bytes", b.image_size, size),
        });
        let got = b_hasher.finish();
        let mut bad = 0usize;
        for ((e, want), (_, have)) in b_ranges.iter().zip(got.iter()) {
            if want != have || e.end() > size {
                bad += 1;
                mism("bmap", *e, &mut mismatches);
            }
        }
        let mut detail = format!("{} of {} ranges differ", bad, b_ranges.len());
        if b_unhashed > 0 {
            detail.push_str(&format!(
                "; {b_unhashed} ranges have no SHA-256 (bmap {}) and were not checked",
                b.version
            ));
        }
        checks.push(Check {
            name: "bmap-ranges".into(),
            ok: bad == 0,
            detail,
        });
    }
    if let Some(w) = &want_sha {
        let (ok, detail) = if *w == sha256 {
            (true, "matches the decompressed image".to_string())
        } else if *w == file_sha256 {
            (
                true,
                format!("matches the file as stored ({})", input.format),
            )
        } else {
            (
                false,
                format!(
                    "expected {w}; image {sha256}{}",
                    if input.format == "raw" {
                        String::new()
                    } else {
                        format!(", file as stored {file_sha256}")
                    }
                ),
            )
        };
        checks.push(Check {
            name: "sha256".into(),
            ok,
            detail,
        });
    }
    if target.is_some() {
        for e in &dev_bad {
            mism("against", *e, &mut mismatches);
        }
        checks.push(Check {
            name: "against".into(),
            ok: dev_bad.is_empty(),
            detail: format!(
                "{} bytes compared{}, {} bytes differ in {} ranges",
                bytes_compared,
                if compare_map.is_some() {
                    " (mapped ranges)"
                } else {
                    ""
                },
                ranges::total(&dev_bad),
                dev_bad.len()
            ),
        });
    }
    if checks.is_empty() {
        bail!(
            "{}: nothing to check against: give --manifest, --bmap, --sha256 or --against \
             (no {}.manifest.json or .bmap beside it)",
            image.display(),
            image.display()
        );
    }
    let ok = checks.iter().all(|c| c.ok);
    Ok(VerifyReport {
        image: image.display().to_string(),
        format: input.format.into(),
        size,
        sha256,
        file_bytes: input.file_bytes,
        file_sha256,
        manifest: manifest.map(|(p, _)| p.display().to_string()),
        bmap: bmap.map(|(p, _)| p.display().to_string()),
        against: o.against.as_ref().map(|p| p.display().to_string()),
        bytes_compared,
        checks,
        mismatches,
        ok,
    })
}
