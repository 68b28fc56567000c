//! Fuzz target `erofs`: read files by path from an EROFS image given as raw bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::fs::erofs_read;

fuzz_target!(|data: &[u8]| {
    let img = data.to_vec();
    for p in [
        "/usr/lib/os-release",
        "/etc/os-release",
        "/etc/rauc/system.conf",
        "a/b/c",
    ] {
        let _ = erofs_read::read_file(&img, p, 64 << 10);
    }
});
