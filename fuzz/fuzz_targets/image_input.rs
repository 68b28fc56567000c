//! Fuzz target `image_input`: `verify::input::ImageInput` (raw, zstd, gzip, xz, bzip2, and our
//! own zip reader with its central directory and zip64 records) on the input as a file,
//! reading at most 16 MiB of the decompressed stream (a bomb must fail or stop, not hang).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::verify::input::ImageInput;
use std::path::PathBuf;

fuzz_target!(|data: &[u8]| {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("lifeboat-fuzz-input-{}.img", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(mut input) = ImageInput::open(&path) {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        while total < 16 << 20 {
            match input.fill(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        let _ = input.stored_sha256();
    }
    let _ = std::fs::remove_file(&path);
});
