//! Fuzz target `squashfs`: read files by path from a squashfs image given as raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::fs::squashfs_read;

fuzz_target!(|data: &[u8]| {
    let img = data.to_vec();
    for p in ["/usr/lib/os-release", "/etc/os-release", "/Image", "a/b/c"] {
        let _ = squashfs_read::read_file(&img, p, 64 << 10);
    }
});
