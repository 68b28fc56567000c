//! Fuzz target `fs_probe`: the filesystem probes (ext, EROFS, squashfs, FAT) over the first
//! bytes of a partition, both as a slice and through a reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::fs;

fuzz_target!(|data: &[u8]| {
    if let Some(info) = fs::probe_bytes(data) {
        let _ = fs::fs_name(&info.kind);
    }
    let v = data.to_vec();
    let _ = fs::probe(&v);
});
