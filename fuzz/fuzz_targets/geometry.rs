//! Fuzz target `geometry`: `flash::geometry::fit_to_disk` (and `Layout::read` under it) on a
//! sparse disk image (see the fuzz crate's lib.rs), fitted to a larger, an equal and a smaller
//! target, with and without growing the data partition. Errors are fine; panics and writes
//! past the target are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::flash::geometry::{FitOptions, fit_to_disk};
use lifeboat::io::ReadAt;
use lifeboat_fuzz::SparseImage;

fuzz_target!(|data: &[u8]| {
    let img = SparseImage::decode(data);
    let size = img.len();
    let ss = img.sector_size();
    for target in [size, size.saturating_add(64 << 20), size.saturating_sub(1 << 20), size / 2] {
        for grow in [false, true] {
            if let Ok(fit) = fit_to_disk(&img, size, target, ss, &FitOptions { grow }) {
                for (off, bytes) in &fit.writes {
                    let end = off.checked_add(bytes.len() as u64);
                    assert!(
                        end.is_some_and(|e| e <= target),
                        "write at {off}+{} past the target's {target} bytes",
                        bytes.len()
                    );
                }
            }
        }
    }
});
