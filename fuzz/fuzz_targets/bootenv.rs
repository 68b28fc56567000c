//! Fuzz target `bootenv`: the U-Boot binary environment and GRUB's grubenv, with the slot
//! decisions made from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::haos::bootenv;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = bootenv::parse_uboot_env(data) {
        let _ = env.is_blank();
        let _ = env.board_family_hint();
        let _ = env.active_slot();
    }
    if let Ok(env) = bootenv::parse_grubenv(data) {
        let _ = env.active_slot();
    }
});
