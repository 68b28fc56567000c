//! Fuzz target `health_pages`: every pure health decoder (ATA IDENTIFY, SMART data and
//! thresholds, the SMART error and self-test logs and their GP versions, skdump blobs, SCSI
//! sense; NVMe Identify Controller, SMART/Health, error and self-test logs; SD CID/CSD/SCR/SSR
//! and CMD56 vendor pages; eMMC EXT_CSD and CID; the kernel's text counters). The first byte
//! picks the decoder, the rest is the page.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifeboat::health::{ata, atalog, kernel, mmc, nvme, nvmelog, sat, sd};

fuzz_target!(|data: &[u8]| {
    let Some((&which, page)) = data.split_first() else {
        return;
    };
    match which % 24 {
        0 => drop(ata::parse_identify(page)),
        1 => drop(ata::parse_smart_data(page)),
        2 => drop(ata::parse_thresholds(page)),
        3 => drop(ata::parse_blob(page)),
        4 => drop(atalog::parse_self_test_log(page)),
        5 => drop(atalog::parse_ext_self_test_log(page)),
        6 => drop(atalog::parse_summary_error_log(page)),
        7 => drop(atalog::parse_ext_error_log(page)),
        8 => drop(sat::parse_sense(page)),
        9 => drop(nvme::parse_identify_controller(page)),
        10 => drop(nvme::parse_smart_log(page)),
        11 => drop(nvmelog::parse_error_log(page)),
        12 => drop(nvmelog::parse_self_test_log(page)),
        13 => {
            if let Ok(cid) = sd::parse_cid(page) {
                let _ = sd::fake_indicators(&cid, 2026);
                let _ = sd::method_for(&cid);
            }
        }
        14 => drop(sd::parse_csd(page)),
        15 => drop(sd::parse_scr(page)),
        16 => drop(sd::parse_ssr(page)),
        17 => {
            for m in [
                sd::Cmd56Method::Sandisk,
                sd::Cmd56Method::Innodisk,
                sd::Cmd56Method::Adata,
                sd::Cmd56Method::Transcend,
                sd::Cmd56Method::Micron,
                sd::Cmd56Method::Swissbit,
                sd::Cmd56Method::TwoStep,
            ] {
                let _ = sd::decode_cmd56(m, page);
            }
        }
        18 => drop(mmc::parse_ext_csd(page)),
        19 => {
            let rev = page.first().copied();
            let _ = mmc::parse_emmc_cid(page.get(1..).unwrap_or(&[]), rev);
        }
        20 => {
            let s = String::from_utf8_lossy(page);
            let _ = mmc::parse_ext_csd_hex(&s);
            let _ = mmc::parse_sysfs_life_time(&s);
            let _ = mmc::parse_sysfs_pre_eol(&s);
            let _ = sd::hex_bytes(&s);
        }
        _ => {
            let s = String::from_utf8_lossy(page);
            let _ = kernel::parse_stat(&s);
            let _ = kernel::parse_hex_counter(&s);
            let _ = kernel::parse_err_stats(&s);
        }
    }
});
