//! One `lifeboat image` run, from options to the finished image, bmap, manifest and mapfile.
//!
//! Order of work: open and check the source (compressed files refused; read-write mounts
//! refused unless `--force`); check the outputs (never overwrite without `--force`; the image
//! is written as `FILE.part` and renamed only when complete and hashed); inspect the source
//! for the manifest; build (or, on `--resume`, reload) the used-range map; run the rescue
//! passes through the pipeline; hash again from the file when the run was not one linear
//! pass; write the bmap and the manifest atomically; rename.

use super::compress::Format;
use super::mapfile::{self, Mapfile, Status, write_atomic};
use super::pipeline::{MapKeeper, Pipeline, RangeHasher, RawFileSink, Sink, StreamSink};
use super::ranges::{self, Extent};
use super::reader::{ReadOptions, SourceReader};
use super::rescue::{Pass1, Progress, RescueOptions, Rescuer};
use super::usage::{self, BLOCK, PartUsage, UsageMap};
use crate::device::{self, SysRoot, discover};
use crate::io::source::{self, SourceKind};
use crate::verify::bmap::{Bmap, hex};
use crate::verify::manifest::{
    BadRange, ImageInfo, MANIFEST_KIND, MANIFEST_SCHEMA_VERSION, Manifest, MappedRange,
    PhaseTiming, RescueSummary, SourceIdentity,
};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

/// Everything an `image` run needs to know.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    pub source: PathBuf,
    /// Output file, or `-` for stdout.
    pub output: PathBuf,
    /// Format; None picks from the output name (raw for stdout).
    pub format: Option<Format>,
    pub level: Option<i32>,
    /// Read every sector instead of the used ones.
    pub all: bool,
    pub force: bool,
    pub resume: bool,
    pub retries: u32,
    pub trim: bool,
    pub scrape: bool,
    pub timeout: Option<Duration>,
    pub max_rate: Option<u64>,
    pub reopen_wait: Duration,
    pub threads: u32,
    /// Bytes per read in the copy passes.
    pub chunk: usize,
    pub direct: bool,
    /// Mapfile save interval.
    pub map_interval: Duration,
    /// Override the sidecar paths (needed for stdout).
    pub bmap: Option<PathBuf>,
    pub manifest: Option<PathBuf>,
    pub mapfile: Option<PathBuf>,
    /// Draw the read-speed picture here.
    pub report_svg: Option<PathBuf>,
    /// The command line, for the mapfile and manifest.
    pub command: String,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct ImageOutcome {
    pub manifest: Manifest,
    pub output: Option<PathBuf>,
    pub manifest_path: Option<PathBuf>,
    pub bmap_path: Option<PathBuf>,
    pub mapfile_path: Option<PathBuf>,
    pub svg_path: Option<PathBuf>,
    pub warnings: Vec<String>,
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Sidecar file paths for an output.
#[derive(Debug, Clone)]
pub struct Paths {
    pub image: Option<PathBuf>,
    pub part: Option<PathBuf>,
    pub bmap: Option<PathBuf>,
    pub manifest: Option<PathBuf>,
    pub mapfile: Option<PathBuf>,
    pub domain: Option<PathBuf>,
}

impl Paths {
    /// `FILE`, `FILE.part`, `FILE.bmap`, `FILE.manifest.json`, `FILE.map`, `FILE.domain.map`.
    pub fn for_output(o: &ImageOptions) -> Paths {
        if o.output.as_os_str() == "-" {
            return Paths {
                image: None,
                part: None,
                bmap: o.bmap.clone(),
                manifest: o.manifest.clone(),
                domain: o.mapfile.as_ref().map(|m| with_suffix(m, ".domain")),
                mapfile: o.mapfile.clone(),
            };
        }
        let f = &o.output;
        Paths {
            image: Some(f.clone()),
            part: Some(with_suffix(f, ".part")),
            bmap: Some(o.bmap.clone().unwrap_or_else(|| with_suffix(f, ".bmap"))),
            manifest: Some(
                o.manifest
                    .clone()
                    .unwrap_or_else(|| with_suffix(f, ".manifest.json")),
            ),
            mapfile: Some(o.mapfile.clone().unwrap_or_else(|| with_suffix(f, ".map"))),
            domain: Some(with_suffix(
                o.mapfile.as_ref().unwrap_or(&with_suffix(f, ".map")),
                ".domain",
            )),
        }
    }
}

/// Identity of the source and the read-write mounts on it.
fn identify(src: &source::Source) -> (SourceIdentity, Vec<crate::sys::DevNum>) {
    let mut id = SourceIdentity {
        path: src.path.display().to_string(),
        kind: match src.kind {
            SourceKind::BlockDevice => "block_device".into(),
            SourceKind::ImageFile => "image_file".into(),
        },
        size: src.size,
        logical_sector_size: src.sector_size,
        physical_sector_size: None,
        disk: None,
        model: None,
        serial: None,
        transport: None,
        cid: None,
        removable: None,
        mounted_rw: vec![],
    };
    let mut devs = Vec::new();
    if src.kind != SourceKind::BlockDevice {
        return (id, devs);
    }
    let root = SysRoot::host();
    let Ok(dev) = crate::sys::block_device_number(&src.path) else {
        return (id, devs);
    };
    devs.push(dev);
    let Some(name) = discover::disk_name_of(&root, dev) else {
        return (id, devs);
    };
    id.disk = Some(name.clone());
    if let Ok(disks) = device::discover(&root)
        && let Some(d) = disks.into_iter().find(|d| d.name == name)
    {
        id.model = d.model.clone();
        id.serial = d.serial.clone();
        id.transport = Some(d.transport.to_string());
        id.removable = Some(d.removable);
        id.physical_sector_size = Some(d.physical_sector_size);
        if let Ok(n) = discover::disk_devnum(&root, &d.name) {
            devs.push(n);
        }
        for p in &d.partitions {
            let pdev = std::fs::read_to_string(root.sys_block(&d.name).join(&p.name).join("dev"))
                .ok()
                .and_then(|t| t.trim().parse().ok());
            if let Some(n) = pdev {
                devs.push(n);
            }
        }
    }
    for rel in ["device/cid", "device/device/cid"] {
        if let Ok(c) = std::fs::read_to_string(root.sys_block(&name).join(rel)) {
            id.cid = Some(c.trim().to_string());
            break;
        }
    }
    // Read-write mounts of the disk or any of its partitions.
    if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo")
        && let Ok(mounts) = crate::sys::mountinfo::parse(&text)
    {
        for m in mounts {
            let rw = m.options.split(',').any(|o| o == "rw");
            if rw && devs.contains(&m.dev) {
                id.mounted_rw.push(format!(
                    "{} ({}) mounted read-write on {}",
                    m.source, m.dev, m.mount_point
                ));
            }
        }
    }
    (id, devs)
}

/// Hash a finished raw image file: whole and per range.
pub fn hash_file(
    path: &Path,
    size: u64,
    ranges: &[Extent],
) -> Result<(String, Vec<(Extent, String)>)> {
    let mut f =
        File::open(path).with_context(|| format!("{}: cannot open to hash", path.display()))?;
    let mut whole = Sha256::new();
    // The map of --all is the whole image: its range hash is the whole-image hash.
    let whole_map = ranges.len() == 1 && ranges[0] == Extent::new(0, size);
    let mut rh = RangeHasher::new(if whole_map { vec![] } else { ranges.to_vec() });
    let mut buf = vec![0u8; 4 << 20];
    let mut off = 0u64;
    while off < size {
        let n = (buf.len() as u64).min(size - off) as usize;
        f.read_exact(&mut buf[..n])
            .with_context(|| format!("{}: reading at byte {off} to hash", path.display()))?;
        whole.update(&buf[..n]);
        rh.feed(off, n as u64, Some(&buf[..n]));
        off += n as u64;
    }
    let sum = hex(&whole.finalize());
    if whole_map {
        return Ok((sum.clone(), vec![(ranges[0], sum)]));
    }
    Ok((sum, rh.finish()))
}

/// Render the used ranges as a ddrescue domain mapfile (`+` used, `?` not).
fn domain_text(size: u64, used: &[Extent], command: &str) -> String {
    let mut m = Mapfile::new(size);
    for e in used {
        m.set(e.start, e.len, Status::Finished);
    }
    m.notes
        .push("domain: `+` = ranges lifeboat reads (used blocks), `?` = unused".into());
    m.phase = mapfile::Phase::Finished;
    m.render(command, SystemTime::now())
}

fn load_domain(path: &Path, size: u64) -> Result<Vec<Extent>> {
    let m = Mapfile::load(path)?;
    mapfile::check_size(&m, size, path)?;
    Ok(m.ranges(Status::Finished))
}

/// Which partition holds `off`, with its role from the inspect report.
fn locate(parts: &[PartUsage], inspect: &Option<serde_json::Value>, e: Extent) -> BadRange {
    let p = parts
        .iter()
        .find(|p| e.start >= p.start && e.start < p.start + p.size);
    let role = p.and_then(|p| {
        inspect
            .as_ref()?
            .get("partitions")?
            .as_array()?
            .iter()
            .find(|x| x.get("number").and_then(|n| n.as_u64()) == Some(u64::from(p.number)))?
            .get("role")?
            .as_str()
            .map(String::from)
    });
    BadRange {
        start: e.start,
        length: e.len,
        partition: p.map(|p| p.number),
        role,
        partition_offset: p.map(|p| e.start - p.start),
        files: vec![],
    }
}

/// The source as the image holds it: the bad ranges read as zeros (and are never read).
struct BadAsZeros<R: crate::io::ReadAt> {
    inner: R,
    /// Sorted, disjoint.
    bad: Vec<Extent>,
}

impl<R: crate::io::ReadAt> crate::io::ReadAt for BadAsZeros<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        let mut pos = offset;
        for b in self
            .bad
            .iter()
            .filter(|b| b.end() > offset && b.start < end)
        {
            if b.start > pos {
                let (s, e) = ((pos - offset) as usize, (b.start - offset) as usize);
                self.inner.read_exact_at(&mut buf[s..e], pos)?;
            }
            let s = (b.start.max(offset) - offset) as usize;
            let e = (b.end().min(end) - offset) as usize;
            buf[s..e].fill(0);
            pos = b.end().min(end);
        }
        if pos < end {
            let s = (pos - offset) as usize;
            self.inner.read_exact_at(&mut buf[s..], pos)?;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// Fill `files` of the bad ranges that lie in ext partitions of the image `r`.
fn attach_files(r: &dyn crate::io::ReadAt, parts: &[PartUsage], bad: &mut [BadRange]) {
    for p in parts
        .iter()
        .filter(|p| p.fs.as_deref().is_some_and(|f| f.starts_with("ext")))
    {
        let idx: Vec<usize> = bad
            .iter()
            .enumerate()
            .filter(|(_, b)| b.partition == Some(p.number))
            .map(|(i, _)| i)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let exts: Vec<Extent> = idx
            .iter()
            .map(|&i| Extent::new(bad[i].start - p.start, bad[i].length))
            .collect();
        let w = crate::io::Window::new(r, p.start, p.size);
        if let Ok(hits) = super::badfiles::files_hit(&w, &exts) {
            for (k, files) in hits {
                if let Some(&i) = idx.get(k) {
                    bad[i].files = files;
                }
            }
        }
    }
}

fn timing(name: &str, t: Instant, bytes: u64) -> PhaseTiming {
    let secs = t.elapsed().as_secs_f64();
    PhaseTiming {
        name: name.into(),
        seconds: secs,
        bytes,
        bytes_per_second: (secs > 0.0 && bytes > 0).then(|| bytes as f64 / secs),
    }
}

/// The pipeline's stage timings, led by the time the reader spent in reads (pass 1).
fn read_stage(r: &Rescuer, stages: Vec<PhaseTiming>) -> Vec<PhaseTiming> {
    let secs: f64 = r.profile.bins.iter().map(|b| b.seconds).sum();
    let bytes: u64 = r.profile.bins.iter().map(|b| b.bytes_read).sum();
    let mut v = vec![super::pipeline::stage(
        "read",
        Duration::from_secs_f64(secs.max(0.0)),
        bytes,
    )];
    v.extend(stages);
    v
}

/// Run `image`.
pub fn run(
    o: &ImageOptions,
    progress: &Progress,
    stop: &AtomicBool,
    warn: &mut dyn FnMut(&str),
) -> Result<ImageOutcome> {
    let started = SystemTime::now();
    let mut warnings = Vec::new();
    let mut warn_ = |s: String, w: &mut dyn FnMut(&str)| {
        w(&s);
        warnings.push(s);
    };
    let src = source::open(&o.source)?;
    if let Some(c) = src.container {
        let p = src.path.display().to_string();
        bail!(
            "{p}: is a {} file, not a disk or raw image; decompress it first ({})",
            c.name(),
            c.how_to_unpack(&p)
        );
    }
    let (identity, _devs) = identify(&src);
    if !identity.mounted_rw.is_empty() {
        if o.force {
            warn_(
                format!(
                    "{}: imaging while mounted read-write (--force): {}; the image may be inconsistent",
                    src.path.display(),
                    identity.mounted_rw.join("; ")
                ),
                warn,
            );
        } else {
            bail!(
                "{}: refusing to image a disk mounted read-write ({}): the filesystem changes while \
                 it is read, so the image would not be consistent. Unmount it (or shut Home Assistant \
                 down) first, or pass --force",
                src.path.display(),
                identity.mounted_rw.join("; ")
            );
        }
    }
    let stdout = o.output.as_os_str() == "-";
    let format = o.format.unwrap_or_else(|| {
        if stdout {
            Format::Raw
        } else {
            Format::from_name(&o.output.to_string_lossy())
        }
    });
    if format == Format::Xz {
        warn_(
            "xz is slow (about 3 MB/s per core): .img.zst is as small within a few percent and \
             100 times faster"
                .into(),
            warn,
        );
    }
    let paths = Paths::for_output(o);
    let seekable = !stdout && format == Format::Raw;
    // How to get a resumable run of the same source, for the messages below.
    let raw_way = |what: &str| {
        let out = o.output.display().to_string();
        let raw = ["zst", "gz", "xz"]
            .iter()
            .find_map(|e| out.strip_suffix(&format!(".{e}")))
            .filter(|r| r.ends_with(".img"))
            .map(String::from)
            .unwrap_or_else(|| "card.img".into());
        format!(
            "{what}; to be able to resume, image to a raw file first: `lifeboat image {src} -o {raw}` \
             (continue it with --resume after an interruption), then compress that file: \
             `lifeboat image {raw} -o {raw}.zst`",
            src = o.source.display()
        )
    };
    if o.resume && !seekable {
        bail!(raw_way(
            "--resume needs a raw .img output file: a compressed stream (or stdout) cannot be \
             continued where it stopped"
        ));
    }
    // Outputs: never overwrite without --force.
    if let Some(img) = &paths.image {
        if let Some(parent) = img.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            bail!("{}: no such directory for the output", parent.display());
        }
        if let (Ok(pdev), true) = (
            crate::sys::file_device_number(
                &File::open(
                    img.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                )
                .with_context(|| format!("{}: cannot open its directory", img.display()))?,
            ),
            src.kind == SourceKind::BlockDevice,
        ) && _devs.contains(&pdev)
        {
            bail!(
                "{}: is on the disk being imaged ({}); write the image to another disk",
                img.display(),
                src.path.display()
            );
        }
    }
    let mut must_not_exist: Vec<&PathBuf> = Vec::new();
    if !o.resume {
        must_not_exist.extend(paths.image.iter());
        must_not_exist.extend(paths.bmap.iter());
        must_not_exist.extend(paths.manifest.iter());
        must_not_exist.extend(paths.mapfile.iter());
        must_not_exist.extend(paths.part.iter());
    } else {
        must_not_exist.extend(paths.image.iter());
    }
    for p in must_not_exist {
        if p.exists() && !o.force {
            let interrupted = Some(p) == paths.part.as_ref() || Some(p) == paths.mapfile.as_ref();
            if interrupted && !seekable {
                bail!(raw_way(&format!(
                    "{}: already exists: an earlier run was interrupted, and a compressed image \
                     cannot be continued; pass --force to start again from the beginning",
                    p.display()
                )));
            }
            let hint = if interrupted {
                " (an earlier run was interrupted: continue it with --resume)"
            } else {
                ""
            };
            bail!(
                "{}: already exists{hint}; pass --force to overwrite",
                p.display()
            );
        }
    }

    // Facts for the manifest.
    progress.phase("inspect", 0);
    let (inspect, inspect_error) = match crate::haos::inspect(&src, crate::haos::Depth::Full) {
        Ok(r) => (serde_json::to_value(&r).ok(), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let size = src.size;
    let mut phases = Vec::new();

    // The map.
    let t = Instant::now();
    progress.phase("map", 0);
    let fresh_map = usage::build(src.read_at(), src.sector_size, o.all);
    let map: UsageMap = if o.resume {
        let d = paths.domain.as_ref().context("no domain mapfile path")?;
        let used = load_domain(d, size)?;
        UsageMap {
            size,
            used,
            partitions: fresh_map.partitions,
        }
    } else {
        fresh_map
    };
    phases.push(timing("map", t, 0));
    if let Some(d) = &paths.domain
        && !o.resume
    {
        write_atomic(d, domain_text(size, &map.used, &o.command).as_bytes())?;
    }

    // Reader and rescue state.
    let reader = SourceReader::open(
        &src.path,
        size,
        src.sector_size,
        src.kind == SourceKind::BlockDevice,
        ReadOptions {
            direct: o.direct,
            timeout: o.timeout,
            max_rate: o.max_rate,
            reopen_wait: o.reopen_wait,
        },
    )?;
    let sector = u64::from(reader.sector());
    if o.direct && src.kind == SourceKind::BlockDevice && !reader.direct() {
        warn_(
            format!(
                "{}: O_DIRECT refused; reading through the page cache",
                src.path.display()
            ),
            warn,
        );
    }
    let chunk = ((o.chunk as u64).max(sector) / sector * sector) as usize;
    let skip_min = (size / 100_000).max(64 << 10) / sector * sector;
    let ropts = RescueOptions {
        chunk,
        retries: o.retries,
        trim: o.trim,
        scrape: o.scrape,
        skip_min,
        skip_max: (size / 100).max(skip_min) / sector * sector,
    };
    let mut rescuer = Rescuer::new(reader, ropts, progress, stop);
    let mut keeper = MapKeeper {
        map: if o.resume {
            let mp = paths.mapfile.as_ref().context("no mapfile path")?;
            let m = Mapfile::load(mp)?;
            mapfile::check_size(&m, size, mp)?;
            m
        } else {
            let mut m = Mapfile::new(size);
            m.notes.push(format!(
                "source: {} size {} serial {}",
                src.path.display(),
                size,
                identity.serial.as_deref().unwrap_or("-")
            ));
            m
        },
        path: paths.mapfile.clone(),
        command: o.command.clone(),
        started,
        interval: o.map_interval,
        last_save: Instant::now(),
    };
    if o.resume
        && let Some(ser) = &identity.serial
        && keeper
            .map
            .notes
            .iter()
            .any(|n| n.starts_with("source:") && !n.ends_with(&format!("serial {ser}")))
        && !o.force
    {
        bail!(
            "{}: the mapfile was made for a disk with another serial number; pass --force if this is the same disk",
            paths
                .mapfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    keeper.save()?;

    // Outputs.
    let threads = o.threads.max(1);
    // Chunks queued per stage: about 16 MiB of reads in flight per stage, 4 to 8 chunks.
    let queue = ((16usize << 20) / chunk.max(1)).clamp(4, 8);
    let level = o.level.unwrap_or(format.default_level());
    let mut hashes: Option<(String, Vec<(Extent, String)>)> = None;
    let mut stages: Vec<PhaseTiming> = Vec::new();
    let mut stored: (Option<u64>, Option<String>) = (None, None);
    let interrupted_msg = |what: &str| {
        format!(
            "interrupted; {what}. The mapfile {} records what was read",
            paths
                .mapfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into())
        )
    };
    if seekable {
        let part = paths.part.as_ref().context("no part path")?;
        let file = if o.resume {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(part)
                .with_context(|| {
                    format!("{}: cannot open to resume (is it there?)", part.display())
                })?
        } else {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(part)
                .with_context(|| format!("{}: cannot create", part.display()))?
        };
        if !o.resume {
            let sink: Box<dyn Sink> = Box::new(
                RawFileSink::new(
                    file.try_clone()
                        .with_context(|| format!("{}: cannot reopen", part.display()))?,
                    size,
                )
                .with_context(|| format!("{}: cannot start its writer", part.display()))?,
            );
            let pipe = Pipeline::start(queue, size, map.used.clone(), sink, Some(keeper))?;
            let p1 = rescuer.copy_stream(size, &map.used, &pipe, false);
            let res = pipe.finish();
            let res = match (p1, res) {
                (Ok(p), Ok(r)) => (p, r),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            let (p1, r) = res;
            stages = read_stage(&rescuer, r.stages);
            keeper = r.keeper.context("mapfile lost in the pipeline")?;
            if p1 == Pass1::Interrupted {
                keeper.save()?;
                bail!(interrupted_msg(&format!(
                    "run the same command with --resume to continue into {}",
                    part.display()
                )));
            }
            let clean = keeper
                .map
                .ranges_in(Status::NonTrimmed, &map.used)
                .is_empty()
                && keeper.map.ranges_in(Status::NonTried, &map.used).is_empty();
            if clean {
                hashes = Some((r.sha256, r.ranges));
            }
        } else {
            rescuer.passes.push("resume".into());
        }
        let done = rescuer.finish_passes(&map.used, &file, &mut keeper)?;
        file.set_len(size)
            .with_context(|| format!("{}: cannot set its size", part.display()))?;
        file.sync_all()
            .with_context(|| format!("{}: cannot sync", part.display()))?;
        keeper.save()?;
        if !done {
            bail!(interrupted_msg(&format!(
                "run the same command with --resume to continue into {}",
                part.display()
            )));
        }
        if hashes.is_none() {
            let t = Instant::now();
            progress.phase("hash", size);
            hashes = Some(hash_file(part, size, &map.used)?);
            phases.push(timing("hash", t, size));
        }
    } else {
        let (out, file): (Box<dyn std::io::Write + Send>, Option<File>) = match &paths.part {
            Some(part) => {
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(part)
                    .with_context(|| format!("{}: cannot create", part.display()))?;
                let w = f
                    .try_clone()
                    .with_context(|| format!("{}: cannot reopen", part.display()))?;
                (
                    Box::new(std::io::BufWriter::with_capacity(1 << 20, w)),
                    Some(f),
                )
            }
            None => (
                Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::io::stdout(),
                )),
                None,
            ),
        };
        let sink: Box<dyn Sink> = Box::new(
            StreamSink::new(out, file, format, level, threads)
                .context("starting the compressor")?,
        );
        let pipe = Pipeline::start(queue, size, map.used.clone(), sink, Some(keeper))?;
        let p1 = rescuer.copy_stream(size, &map.used, &pipe, true);
        let res = pipe.finish();
        let (p1, r) = match (p1, res) {
            (Ok(p), Ok(r)) => (p, r),
            (Err(e), _) | (_, Err(e)) => {
                if let Some(p) = &paths.part {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        };
        stages = read_stage(&rescuer, r.stages);
        keeper = r.keeper.context("mapfile lost in the pipeline")?;
        if p1 == Pass1::Interrupted {
            keeper.save()?;
            if let Some(p) = &paths.part {
                let _ = std::fs::remove_file(p);
            }
            bail!(interrupted_msg(&raw_way(
                "a compressed image cannot be resumed: run the command again with --force to start \
                 over"
            )));
        }
        keeper.map.phase = mapfile::Phase::Finished;
        keeper.map.current_pos = 0;
        keeper.save()?;
        stored = r.stored;
        hashes = Some((r.sha256, r.ranges));
    }
    phases.extend(rescuer.phases.iter().cloned());
    phases.extend(stages);
    let (sha256, range_hashes) = hashes.context("no hashes")?;

    // Bad ranges: whatever in the domain is not finished.
    let finished = keeper.map.ranges(Status::Finished);
    let bad_ext = ranges::subtract(&map.used, &finished, size);
    let mut bad: Vec<BadRange> = bad_ext
        .iter()
        .map(|e| locate(&map.partitions, &inspect, *e))
        .collect();
    let bad_bytes = ranges::total(&bad_ext);
    if !bad.is_empty() {
        progress.phase("bad-files", 0);
        match (&paths.part, seekable) {
            // The finished raw image: the card is not read again.
            (Some(part), true) => {
                if let Ok(f) = File::open(part) {
                    let r = crate::io::FileReader::new(f, size);
                    attach_files(&r, &map.partitions, &mut bad);
                }
            }
            // A compressed or streamed image cannot be read back: the filesystem metadata
            // comes from the source (reopened: it may have been reset), with the bad ranges
            // read as the zeros the image holds, so the answer is the same as from a raw image.
            _ => {
                if let Ok(f) = File::open(&src.path) {
                    let r = BadAsZeros {
                        inner: crate::io::FileReader::new(f, size),
                        bad: bad_ext.clone(),
                    };
                    attach_files(&r, &map.partitions, &mut bad);
                }
            }
        }
    }

    // Bmap and manifest.
    let image_name = paths
        .image
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "-".into());
    if seekable {
        stored = (Some(size), Some(sha256.clone()));
    }
    if let Some(bp) = &paths.bmap {
        let b = Bmap::from_extents(size, BLOCK, &range_hashes);
        write_atomic(bp, b.render().as_bytes())?;
    }
    let came_back_as: Vec<String> = rescuer
        .reader
        .came_back_as
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if !came_back_as.is_empty() {
        warn_(
            format!(
                "{}: the source dropped off the bus and came back as {} (recognised by its \
                 identity and first bytes); the image continued from there",
                src.path.display(),
                came_back_as.join(", then ")
            ),
            warn,
        );
    }
    let svg_path = o.report_svg.clone();
    let manifest = Manifest {
        schema_version: MANIFEST_SCHEMA_VERSION,
        kind: MANIFEST_KIND.into(),
        tool: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        started: mapfile::rfc3339(started),
        finished: mapfile::rfc3339(SystemTime::now()),
        command: o.command.clone(),
        source: identity,
        image: ImageInfo {
            file: image_name,
            format: format.name().into(),
            size,
            sha256,
            block_size: BLOCK,
            file_bytes: stored.0,
            file_sha256: stored.1,
            bmap: paths
                .bmap
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
        },
        mode: if o.all { "all" } else { "used" }.into(),
        partitions: map.partitions.clone(),
        inspect,
        inspect_error,
        mapped_bytes: map.used_bytes(),
        mapped: range_hashes
            .iter()
            .map(|(e, h)| MappedRange {
                start: e.start,
                length: e.len,
                sha256: h.clone(),
            })
            .collect(),
        bad,
        rescue: RescueSummary {
            mapfile: paths
                .mapfile
                .as_ref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            resumed: o.resume,
            read_errors: rescuer.read_errors,
            retries: rescuer.retried,
            timeouts: rescuer.reader.stats.timeouts,
            reopens: rescuer.reader.stats.reopens,
            came_back_as,
            bad_bytes,
            passes: rescuer.passes.clone(),
        },
        phases,
        read_profile: rescuer.profile.bins.clone(),
    };
    if let Some(mp) = &paths.manifest {
        write_atomic(mp, manifest.to_json().as_bytes())?;
    }
    if let Some(svg) = &svg_path {
        write_atomic(svg, super::svg::render(&manifest).as_bytes())?;
    }
    if let (Some(part), Some(img)) = (&paths.part, &paths.image) {
        std::fs::rename(part, img)
            .with_context(|| format!("{}: cannot rename to {}", part.display(), img.display()))?;
    }
    Ok(ImageOutcome {
        manifest,
        output: paths.image.clone(),
        manifest_path: paths.manifest.clone(),
        bmap_path: paths.bmap.clone(),
        mapfile_path: paths.mapfile.clone(),
        svg_path,
        warnings,
    })
}
