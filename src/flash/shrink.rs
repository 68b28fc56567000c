//! `lifeboat shrink`: make an image fit a slightly smaller card or SSD. The image (any format
//! `ImageInput` reads) is copied into a sparse temp file next to the output; its ext4 data partition
//! (which must be the last one) is checked with `e2fsck -f -y` and shrunk offline with
//! `resize2fs` through a loop device over the temp file (`losetup --offset --sizelimit`); the
//! tables are then rewritten by [`geometry`](super::geometry) (GPT entry, LastUsableLBA,
//! AlternateLBA, backup GPT at the new end, CRCs; hybrid entries only when they overrun; DOS
//! primary or extended + last EBR), the file is cut to the target size, checked again with
//! `e2fsck -fn`, and renamed into place. Nothing but our own temp file is ever attached or
//! written; the ext4 work is e2fsprogs', not ours.

use super::geometry::{DataPlan, Layout};
use crate::io::{FileReader, Window};
use crate::verify::input::ImageInput;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `shrink` was asked to do.
#[derive(Debug, Clone)]
pub struct ShrinkOptions {
    /// Size of the target in bytes.
    pub target_size: u64,
    /// Where the size came from (`--size` or the device), for messages.
    pub target_desc: String,
    /// Replace an existing output file.
    pub force: bool,
    /// Set (by a signal handler) to stop: the temp copy is removed, loop devices detached.
    pub stop: Option<Arc<AtomicBool>>,
}

impl ShrinkOptions {
    fn check_stop(&self) -> Result<()> {
        if self
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            bail!("interrupted; the temp copy was removed and no output written");
        }
        Ok(())
    }
}

/// What `shrink` did.
#[derive(Debug, Clone, Serialize)]
pub struct ShrinkReport {
    pub input: String,
    /// `raw`, `zstd`, `gzip` or `xz`.
    pub format: &'static str,
    pub output: String,
    /// Bytes of the (decompressed) input image.
    pub image_size: u64,
    pub target_size: u64,
    pub target: String,
    /// Bytes of the output image (the target size rounded down to whole sectors).
    pub output_size: u64,
    /// Table kind: `gpt` or `mbr`.
    pub table: &'static str,
    pub data_partition: u32,
    pub data_start_bytes: u64,
    pub data_old_bytes: u64,
    pub data_new_bytes: u64,
    /// Filesystem size before and after.
    pub fs_old_bytes: u64,
    pub fs_new_bytes: u64,
    /// `resize2fs -P`'s estimate of the smallest filesystem, when it was asked.
    pub fs_min_bytes: Option<u64>,
    /// `resize2fs` ran (false when the filesystem already fitted).
    pub resized: bool,
    /// `e2fsck -f -y` had to fix the filesystem before the resize.
    pub fsck_fixed: bool,
    /// What was changed, in plain words.
    pub notes: Vec<String>,
}

/// A temp file removed on drop unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A loop device over part of our temp file, detached on drop.
struct Loop {
    dev: PathBuf,
}

impl Loop {
    fn attach(file: &Path, offset: u64, size: u64, read_only: bool) -> Result<Loop> {
        let mut c = Command::new("losetup");
        c.args(["--find", "--show"]);
        if read_only {
            c.arg("--read-only");
        }
        c.arg("--offset")
            .arg(offset.to_string())
            .arg("--sizelimit")
            .arg(size.to_string())
            .arg(file);
        let out = c.output().context(
            "cannot run losetup (install util-linux); shrink attaches its temp copy as a loop device",
        )?;
        if !out.status.success() {
            bail!(
                "attaching the temp copy {} as a loop device failed (shrink needs root): {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !dev.starts_with("/dev/") {
            bail!("losetup printed no device name for {}", file.display());
        }
        Ok(Loop { dev })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).output();
    }
}

/// Run a tool, returning (exit code, stdout + stderr).
fn run_tool(tool: &str, args: &[&str]) -> Result<(i32, String)> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {tool} (install e2fsprogs)"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

fn last_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(n)..].join("; ")
}

/// Parse `resize2fs -P`'s "Estimated minimum size of the filesystem: N".
pub fn parse_min_blocks(out: &str) -> Option<u64> {
    out.lines()
        .find_map(|l| l.split("Estimated minimum size of the filesystem:").nth(1))
        .and_then(|v| v.trim().parse().ok())
}

/// Copy the image into `dst` (created new), skipping all-zero blocks so it stays sparse.
/// Returns the image size.
fn copy_sparse(
    input: &mut ImageInput,
    dst: &File,
    dst_path: &Path,
    opts: &ShrinkOptions,
) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        opts.check_stop()?;
        let n = input.fill(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if chunk.iter().any(|&b| b != 0) {
            dst.write_all_at(chunk, off)
                .with_context(|| format!("{}: cannot write the temp copy", dst_path.display()))?;
        }
        off += n as u64;
        if n < buf.len() {
            break;
        }
    }
    dst.set_len(off)
        .with_context(|| format!("{}: cannot size the temp copy", dst_path.display()))?;
    Ok(off)
}

/// Shrink `input` to fit a target of `opts.target_size` bytes, writing `output`.
pub fn shrink(input: &Path, output: &Path, opts: &ShrinkOptions) -> Result<ShrinkReport> {
    if output.exists() && !opts.force {
        bail!(
            "{}: already exists; not overwriting it (add --force to replace it)",
            output.display()
        );
    }
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        bail!(
            "{}: the output must be a new file, not the input image",
            output.display()
        );
    }
    let mut inp = ImageInput::open(input)?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "shrunk.img".into());
    let tmp = TempFile {
        path: dir.join(format!(".{name}.shrink-{}.tmp", std::process::id())),
        keep: false,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp.path)
        .with_context(|| {
            format!(
                "{}: cannot create the temp copy (is the directory writable?)",
                tmp.path.display()
            )
        })?;
    let image_size = copy_sparse(&mut inp, &file, &tmp.path, opts)?;
    let target = opts.target_size;
    if target >= image_size {
        bail!(
            "the target ({target} bytes, {}) is not smaller than the image ({image_size} bytes); \
             nothing to shrink (`lifeboat flash` moves the backup GPT on a bigger disk itself)",
            opts.target_desc
        );
    }
    let ss = 512u32;
    let layout = {
        let r = FileReader::new(file.try_clone()?, image_size);
        Layout::read(&r, image_size, ss)
            .with_context(|| format!("{}: reading the partition table", input.display()))?
    };
    let Some(data) = layout.data.clone() else {
        bail!(
            "{}: no Home Assistant OS data partition found (GPT name hassos-data or an ext4 \
             labelled hassos-data*); shrink resizes only that partition",
            input.display()
        );
    };
    if !data.is_last {
        bail!(
            "{}: the data partition p{} is not the last partition; only a last partition can \
             be shrunk",
            input.display(),
            data.number
        );
    }
    let ssb = u64::from(ss);
    let start_b = data.start_lba * ssb;
    let old_b = (data.end_lba - data.start_lba) * ssb;
    let fs = {
        let r = FileReader::new(file.try_clone()?, image_size);
        let w = Window::new(&r, start_b, old_b);
        crate::fs::probe(&w)?
    };
    let (block_size, fs_old) = match fs.as_ref().map(|f| &f.kind) {
        Some(crate::fs::FsKind::Ext { block_size, .. }) => (
            u64::from(*block_size),
            fs.as_ref().map_or(0, |f| f.size_bytes),
        ),
        _ => bail!(
            "{}: the data partition p{} holds no ext2/3/4 filesystem; cannot shrink it",
            input.display(),
            data.number
        ),
    };
    let (max_end, _) = layout.max_data_end(target)?;
    if max_end <= data.start_lba {
        bail!(
            "the target ({target} bytes) ends before the data partition p{} can begin (it \
             starts at byte {start_b})",
            data.number
        );
    }
    let new_b = (max_end - data.start_lba) * ssb;
    let new_blocks = new_b / block_size;
    let mut rep = ShrinkReport {
        input: input.display().to_string(),
        format: inp.format,
        output: output.display().to_string(),
        image_size,
        target_size: target,
        target: opts.target_desc.clone(),
        output_size: target / ssb * ssb,
        table: if layout.is_gpt() { "gpt" } else { "mbr" },
        data_partition: data.number,
        data_start_bytes: start_b,
        data_old_bytes: old_b,
        data_new_bytes: new_b,
        fs_old_bytes: fs_old,
        fs_new_bytes: fs_old,
        fs_min_bytes: None,
        resized: false,
        fsck_fixed: false,
        notes: Vec::new(),
    };

    if fs_old > new_b {
        opts.check_stop()?;
        let lp = Loop::attach(&tmp.path, start_b, old_b, false)?;
        let dev = lp.dev.to_string_lossy().into_owned();
        let (code, text) = run_tool("e2fsck", &["-f", "-y", &dev])?;
        if !(0..4).contains(&code) {
            bail!(
                "e2fsck could not repair the data filesystem (exit {code}): {}; not shrinking",
                last_lines(&text, 4)
            );
        }
        if code & 3 != 0 {
            rep.fsck_fixed = true;
            rep.notes.push(format!(
                "e2fsck -f -y fixed errors in the data filesystem before the resize: {}",
                last_lines(&text, 3)
            ));
        }
        opts.check_stop()?;
        let (code, text) = run_tool("resize2fs", &["-P", &dev])?;
        let min_blocks = parse_min_blocks(&text).filter(|_| code == 0);
        let Some(min_blocks) = min_blocks else {
            bail!(
                "resize2fs -P gave no size estimate (exit {code}): {}",
                last_lines(&text, 3)
            );
        };
        let min_b = min_blocks * block_size;
        rep.fs_min_bytes = Some(min_b);
        if min_blocks > new_blocks {
            let align = super::geometry::ALIGN_BYTES / ssb;
            let need_end = (data.start_lba + min_b.div_ceil(ssb)).div_ceil(align) * align;
            bail!(
                "the data does not fit: the data filesystem needs at least {min_b} bytes \
                 (resize2fs -P: {min_blocks} blocks of {block_size}), but a target of {target} \
                 bytes ({}) leaves {new_b} bytes for the data partition (it starts at byte \
                 {start_b}); the smallest target that fits is {} bytes. Free space on the \
                 data partition first (old backups, the recorder database) or use a bigger card",
                opts.target_desc,
                layout.target_size_for_end(need_end)
            );
        }
        opts.check_stop()?;
        let (code, text) = run_tool("resize2fs", &[&dev, &new_blocks.to_string()])?;
        opts.check_stop()?;
        if code != 0 {
            bail!(
                "resize2fs failed (exit {code}): {}; the input image is unchanged",
                last_lines(&text, 4)
            );
        }
        drop(lp);
        rep.resized = true;
        rep.fs_new_bytes = new_blocks * block_size;
        rep.notes.push(format!(
            "data filesystem shrunk from {fs_old} to {} bytes",
            rep.fs_new_bytes
        ));
    }

    // The tables, then the length.
    opts.check_stop()?;
    let fit = {
        let r = FileReader::new(file.try_clone()?, image_size);
        let layout = Layout::read(&r, image_size, ss)?;
        layout.plan(target, DataPlan::EndAt(max_end))?
    };
    for (off, b) in &fit.writes {
        file.write_all_at(b, *off)
            .with_context(|| format!("{}: writing the tables", tmp.path.display()))?;
    }
    rep.notes.extend(fit.notes);
    file.set_len(rep.output_size)
        .with_context(|| format!("{}: cutting to the target size", tmp.path.display()))?;
    file.sync_all()
        .with_context(|| format!("{}: syncing", tmp.path.display()))?;

    // Check the result as it will be on the target.
    {
        let lp = Loop::attach(&tmp.path, start_b, new_b, true)?;
        let dev = lp.dev.to_string_lossy().into_owned();
        let (code, text) = run_tool("e2fsck", &["-f", "-n", &dev])?;
        if code != 0 {
            bail!(
                "the shrunk data filesystem fails e2fsck -fn (exit {code}): {}; no output written",
                last_lines(&text, 4)
            );
        }
    }
    opts.check_stop()?;
    drop(file);
    if opts.force {
        std::fs::rename(&tmp.path, output).with_context(|| {
            format!(
                "cannot rename {} to {}",
                tmp.path.display(),
                output.display()
            )
        })?;
    } else {
        // A link fails when OUT appeared meanwhile: never replaced without --force. Where
        // links are not supported (FAT, exFAT), check and rename.
        match std::fs::hard_link(&tmp.path, output) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "{}: appeared while shrinking; not overwriting it (add --force to replace it)",
                output.display()
            ),
            Err(_) if !output.exists() => {
                std::fs::rename(&tmp.path, output).with_context(|| {
                    format!(
                        "cannot rename {} to {}",
                        tmp.path.display(),
                        output.display()
                    )
                })?;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot put the result at {}", output.display()));
            }
        }
        let _ = std::fs::remove_file(&tmp.path);
    }
    let mut tmp = tmp;
    tmp.keep = true;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_blocks() {
        let out = "resize2fs 1.47.0 (5-Feb-2023)\nEstimated minimum size of the filesystem: 5012\n";
        assert_eq!(parse_min_blocks(out), Some(5012));
        assert_eq!(parse_min_blocks("nothing"), None);
    }

    #[test]
    fn refuses_existing_output() {
        let dir = std::env::temp_dir();
        let out = dir.join(format!("lifeboat-shrink-exists-{}.img", std::process::id()));
        std::fs::write(&out, b"x").unwrap();
        let e = shrink(
            Path::new("/nonexistent"),
            &out,
            &ShrinkOptions {
                target_size: 1 << 20,
                target_desc: "--size".into(),
                force: false,
                stop: None,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(std::fs::read(&out).unwrap(), b"x");
        std::fs::remove_file(&out).unwrap();
    }
}
