//! lifeboat: keep a Home Assistant OS installation alive when its storage ages.
//!
//! The library does all the work; `main.rs` only parses arguments and hands over.
//! Module map (each later capability has its own home):
//! - [`sys`]: every `unsafe`/ioctl call, behind safe wrappers, plus `/proc` text parsers.
//! - [`device`]: block-device discovery from sysfs (injectable root), transports, ownership.
//! - [`table`]: partition tables (GPT, protective/hybrid MBR, DOS MBR with EBR chains), pure.
//! - [`fs`]: filesystem probes (FAT, ext2/3/4, squashfs, EROFS) and the read-only FAT reader.
//! - [`haos`]: Home Assistant OS recognition and the offline view of boot, slots and data.
//! - [`health`]: storage wear and health (SD, eMMC, NVMe, SATA/USB), decoders and verdicts.
//! - [`io`]: positional readers over image files and devices, bounded windows, format sniffing.
//! - [`report`]: rendering results as text or JSON.
//! - [`backup`]: Home Assistant backup files (tar, backup.json, later SecureTar).
//! - [`imaging`]: `image`: used-range maps, rescue reads, ddrescue mapfiles, the pipeline.
//! - [`verify`]: image manifests and bmap files (written by `image`, read by `verify`/`flash`).
//! - [`cli`]: the clap definitions.
//! - [`cmd`]: one module per subcommand, turning arguments into results.
//! - [`error`]: the exit-status policy, decided in one place.

pub mod backup;
pub mod cli;
pub mod cmd;
pub mod device;
pub mod error;
pub mod flash;
pub mod fs;
pub mod haos;
pub mod health;
pub mod imaging;
pub mod io;
pub mod report;
pub mod sys;
pub mod table;
pub mod verify;
