//! SCSI/ATA Translation (SAT), pure: building ATA PASS-THROUGH (16) and (12) CDBs for the
//! SMART commands lifeboat sends (IDENTIFY, SMART READ DATA, READ THRESHOLDS, RETURN
//! STATUS), parsing the sense data that comes back (descriptor and fixed formats, the ATA
//! Status Return descriptor 0x09 with the output registers), and judging an `SG_IO`
//! outcome. Also the CDBs of the NVMe-over-USB tunnels (ASMedia, Realtek, JMicron).
//! Layouts: SAT-2/SAT-4 and smartmontools `scsiata.cpp`/`scsinvme.cpp`
//! (`docs/storage-health.md` §4.4, §5.1, §5.2). CDBs are golden-tested against the bytes
//! Linux libata accepted on the QEMU guest.

use crate::sys::sg::SgOutcome;
use serde::Serialize;

/// ATA protocol field of the pass-through CDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    NonData = 3,
    PioDataIn = 4,
}

/// One ATA command with its input registers (28-bit form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtaCommand {
    pub command: u8,
    pub features: u8,
    pub count: u8,
    pub lba_low: u8,
    pub lba_mid: u8,
    pub lba_high: u8,
    pub device: u8,
    pub protocol: Protocol,
    /// Ask the SATL to return the output registers (sense descriptor 0x09) even on success.
    pub ck_cond: bool,
}

/// SMART command code and its signature in LBA mid/high.
const SMART: u8 = 0xB0;
const SMART_MID: u8 = 0x4F;
const SMART_HIGH: u8 = 0xC2;

impl AtaCommand {
    const fn smart(features: u8, protocol: Protocol, ck_cond: bool) -> Self {
        AtaCommand {
            command: SMART,
            features,
            count: if matches!(protocol, Protocol::PioDataIn) {
                1
            } else {
                0
            },
            lba_low: 0,
            lba_mid: SMART_MID,
            lba_high: SMART_HIGH,
            device: 0,
            protocol,
            ck_cond,
        }
    }
    /// IDENTIFY DEVICE (0xEC), 512 bytes in.
    pub const IDENTIFY: AtaCommand = AtaCommand {
        command: 0xEC,
        features: 0,
        count: 1,
        lba_low: 0,
        lba_mid: 0,
        lba_high: 0,
        device: 0,
        protocol: Protocol::PioDataIn,
        ck_cond: false,
    };
    /// SMART READ DATA (feature 0xD0), 512 bytes in.
    pub const SMART_READ_DATA: AtaCommand = AtaCommand::smart(0xD0, Protocol::PioDataIn, false);
    /// SMART READ THRESHOLDS (feature 0xD1), 512 bytes in.
    pub const SMART_READ_THRESHOLDS: AtaCommand =
        AtaCommand::smart(0xD1, Protocol::PioDataIn, false);
    /// SMART RETURN STATUS (feature 0xDA), no data; the answer is in LBA mid/high.
    pub const SMART_RETURN_STATUS: AtaCommand = AtaCommand::smart(0xDA, Protocol::NonData, true);
    /// SMART READ LOG (feature 0xD5) of one 512-byte page at log address `addr` (0x01
    /// summary error log, 0x06 self-test log).
    pub const fn smart_read_log(addr: u8) -> AtaCommand {
        let mut c = AtaCommand::smart(0xD5, Protocol::PioDataIn, false);
        c.lba_low = addr;
        c
    }

    /// ATA PASS-THROUGH (16) of READ LOG EXT (0x2F, 48-bit, PIO data-in): `pages` pages of
    /// General Purpose log `addr` from page `page`. Log address in LBA(7:0), page number in
    /// LBA(15:8) and LBA(39:32), page count in COUNT. There is no 12-byte form (it cannot
    /// carry 48-bit registers).
    pub fn read_log_ext_cdb16(addr: u8, page: u16, pages: u16) -> [u8; 16] {
        let [page_lo, page_hi] = page.to_le_bytes();
        let [count_lo, count_hi] = pages.to_le_bytes();
        [
            0x85,
            ((Protocol::PioDataIn as u8) << 1) | 1, // extend: 48-bit command
            (1 << 3) | (1 << 2) | 2,                // t_dir in, blocks, length in COUNT
            0,
            0,
            count_hi,
            count_lo,
            0,
            addr,
            page_hi,
            page_lo,
            0,
            0,
            0,
            0x2F,
            0,
        ]
    }

    fn byte1_2(&self) -> (u8, u8) {
        let proto = self.protocol as u8;
        let data_in = matches!(self.protocol, Protocol::PioDataIn);
        // [2]: off_line 0 | ck_cond<<5 | t_type 0 | t_dir<<3 | byte_block<<2 | t_length.
        let b2 = (u8::from(self.ck_cond) << 5) | if data_in { (1 << 3) | (1 << 2) | 2 } else { 0 };
        (proto << 1, b2)
    }

    /// ATA PASS-THROUGH (16), opcode 0x85.
    pub fn cdb16(&self) -> [u8; 16] {
        let (b1, b2) = self.byte1_2();
        [
            0x85,
            b1,
            b2,
            0,
            self.features,
            0,
            self.count,
            0,
            self.lba_low,
            0,
            self.lba_mid,
            0,
            self.lba_high,
            self.device,
            self.command,
            0,
        ]
    }

    /// ATA PASS-THROUGH (12), opcode 0xA1 (for bridges that reject the 16-byte form).
    pub fn cdb12(&self) -> [u8; 12] {
        let (b1, b2) = self.byte1_2();
        [
            0xA1,
            b1,
            b2,
            self.features,
            self.count,
            self.lba_low,
            self.lba_mid,
            self.lba_high,
            self.device,
            self.command,
            0,
            0,
        ]
    }
}

/// ATA output registers, from the ATA Status Return descriptor or fixed-format sense.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AtaRegisters {
    pub error: u8,
    pub count: u8,
    pub lba_low: u8,
    pub lba_mid: u8,
    pub lba_high: u8,
    pub device: u8,
    pub status: u8,
}

/// Parsed sense data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sense {
    /// 0x70/0x71 fixed, 0x72/0x73 descriptor.
    pub response_code: u8,
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
    /// The ATA output registers when the sense carries them.
    pub ata: Option<AtaRegisters>,
}

impl Sense {
    /// ILLEGAL REQUEST with "invalid command operation code" or "invalid field in CDB": the
    /// device (or bridge) does not take this command.
    pub fn is_unsupported_command(&self) -> bool {
        self.key == 0x05 && matches!(self.asc, 0x20 | 0x24)
    }
    /// Plain words for the sense key and code.
    pub fn describe(&self) -> String {
        let key = match self.key {
            0x0 => "no sense",
            0x1 => "recovered error",
            0x2 => "not ready",
            0x3 => "medium error",
            0x4 => "hardware error",
            0x5 => "illegal request",
            0x6 => "unit attention",
            0x7 => "data protect",
            0xB => "aborted command",
            _ => "sense key",
        };
        let what = match (self.asc, self.ascq) {
            (0x20, 0x00) => " (invalid command operation code)",
            (0x24, 0x00) => " (invalid field in CDB)",
            (0x00, 0x1D) => " (ATA pass-through information available)",
            (0x3A, _) => " (medium not present)",
            _ => "",
        };
        format!(
            "{key} 0x{:x}, ASC/ASCQ 0x{:02x}/0x{:02x}{what}",
            self.key, self.asc, self.ascq
        )
    }
}

/// Parse sense bytes (descriptor or fixed format). `None` when too short or unknown.
pub fn parse_sense(s: &[u8]) -> Option<Sense> {
    let code = *s.first()? & 0x7F;
    match code {
        0x72 | 0x73 => {
            if s.len() < 4 {
                return None;
            }
            let mut out = Sense {
                response_code: code,
                key: s[1] & 0x0F,
                asc: s[2],
                ascq: s[3],
                ata: None,
            };
            let add_len = usize::from(*s.get(7).unwrap_or(&0));
            let end = (8 + add_len).min(s.len());
            let mut p = 8;
            while p + 2 <= end {
                let d_code = s[p];
                let d_len = usize::from(s[p + 1]);
                let d = &s[p..(p + 2 + d_len).min(end)];
                if d_code == 0x09 && d.len() >= 14 {
                    out.ata = Some(AtaRegisters {
                        error: d[3],
                        count: d[5],
                        lba_low: d[7],
                        lba_mid: d[9],
                        lba_high: d[11],
                        device: d[12],
                        status: d[13],
                    });
                }
                p += 2 + d_len;
            }
            Some(out)
        }
        0x70 | 0x71 => {
            if s.len() < 14 {
                return None;
            }
            let mut out = Sense {
                response_code: code,
                key: s[2] & 0x0F,
                asc: s[12],
                ascq: s[13],
                ata: None,
            };
            // SAT-2: fixed format with ASC/ASCQ 00/1D carries the registers in the
            // information and command-specific fields.
            if out.asc == 0x00 && out.ascq == 0x1D {
                out.ata = Some(AtaRegisters {
                    error: s[3],
                    status: s[4],
                    device: s[5],
                    count: s[6],
                    lba_low: s[9],
                    lba_mid: s[10],
                    lba_high: s[11],
                });
            }
            Some(out)
        }
        _ => None,
    }
}

/// What SMART RETURN STATUS said, from LBA mid/high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmartStatus {
    /// 0x4F/0xC2: no threshold exceeded.
    Good,
    /// 0xF4/0x2C: threshold exceeded, the drive predicts its own failure.
    Failing,
}

/// Decode the RETURN STATUS registers. `None` for any other register values (some bridges
/// return zeros because they cannot pass the output registers back).
pub fn smart_status(r: &AtaRegisters) -> Option<SmartStatus> {
    match (r.lba_mid, r.lba_high) {
        (0x4F, 0xC2) => Some(SmartStatus::Good),
        (0xF4, 0x2C) => Some(SmartStatus::Failing),
        _ => None,
    }
}

/// How one pass-through command went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtResult {
    /// Done; for a ck_cond command the output registers when the SATL returned them.
    Ok(Option<AtaRegisters>),
    /// The device or bridge refused the command (ILLEGAL REQUEST).
    Unsupported(Sense),
    /// The ATA command ended with an error (status ERR bit set, e.g. SMART disabled).
    AtaError(AtaRegisters),
    /// Some other failure: the description says what.
    Failed(String),
}

/// Judge an `SG_IO` outcome of an ATA PASS-THROUGH command.
pub fn judge(o: &SgOutcome) -> PtResult {
    if o.host_status != 0 {
        return PtResult::Failed(format!(
            "transport error (host status 0x{:x})",
            o.host_status
        ));
    }
    let sense = parse_sense(&o.sense);
    if o.status == 0 && o.sense.is_empty() {
        return PtResult::Ok(None);
    }
    match sense {
        Some(s) if s.is_unsupported_command() => PtResult::Unsupported(s),
        Some(s) => match s.ata {
            // With ck_cond the SATL reports CHECK CONDITION / RECOVERED ERROR 00/1D on
            // success. smartmontools ignores a bogus key when status & 0xC1 == 0x40.
            Some(r) if r.status & 0x01 == 0 => PtResult::Ok(Some(r)),
            Some(r) => PtResult::AtaError(r),
            None if s.key == 0 || s.key == 1 => PtResult::Ok(None),
            None => PtResult::Failed(s.describe()),
        },
        None if o.status == 0 => PtResult::Ok(None),
        None => PtResult::Failed(format!(
            "SCSI status 0x{:02x} without readable sense data",
            o.status
        )),
    }
}

/// CDB of the ASMedia ASM236x NVMe tunnel (`sntasmedia`): opcode 0xE6, data-in.
pub fn asmedia_nvme_cdb(nvme_opcode: u8, cdw10: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0xE6;
    c[1] = nvme_opcode;
    c[3] = (cdw10 & 0xFF) as u8;
    c[7] = ((cdw10 >> 16) & 0xFF) as u8;
    c
}

/// CDB of the Realtek RTL9210/9211 NVMe tunnel (`sntrealtek`): opcode 0xE4, data-in.
pub fn realtek_nvme_cdb(nvme_opcode: u8, cdw10: u32, len: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0xE4;
    c[1..3].copy_from_slice(&len.to_le_bytes());
    c[3] = nvme_opcode;
    c[4] = (cdw10 & 0xFF) as u8;
    c
}

/// JMicron JMS583 tunnel signature: "NVME" read as a little-endian u32.
pub const JMICRON_SIGNATURE: u32 = 0x454D_564E;

/// The three-step JMicron JMS583 NVMe tunnel (`sntjmicron`): a 12-byte CDB with opcode
/// 0xA1, admin bit and a protocol (0 = command block out, 2 = DMA in, 0xF = response in).
pub fn jmicron_cdb(proto: u8, len: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = 0xA1;
    c[1] = 0x80 | (proto & 0x0F);
    c[3] = ((len >> 16) & 0xFF) as u8;
    c[4] = ((len >> 8) & 0xFF) as u8;
    c[5] = (len & 0xFF) as u8;
    c
}

/// The 512-byte command block of the JMicron tunnel's first step.
pub fn jmicron_command_block(opcode: u8, nsid: u32, cdw: [u32; 6]) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..4].copy_from_slice(&JMICRON_SIGNATURE.to_le_bytes());
    b[8..12].copy_from_slice(&u32::from(opcode).to_le_bytes());
    b[12..16].copy_from_slice(&nsid.to_le_bytes());
    for (i, v) in cdw.iter().enumerate() {
        b[48 + 4 * i..52 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// Check the JMicron tunnel's response block: signature, then the NVMe status
/// (dword5 >> 17). `Err` names what is wrong.
pub fn jmicron_response(b: &[u8]) -> Result<u32, String> {
    if b.len() < 24 {
        return Err(format!("response block of {} bytes", b.len()));
    }
    let dw = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    if dw(0) != JMICRON_SIGNATURE {
        return Err(format!("bad signature 0x{:08x}", dw(0)));
    }
    let status = dw(5) >> 17;
    if status != 0 {
        return Err(format!("NVMe status 0x{status:x}"));
    }
    Ok(dw(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    /// CDBs that libata accepted on the QEMU guest (reference §5.1 table).
    #[test]
    fn cdbs_match_the_ones_libata_accepted() {
        assert_eq!(
            AtaCommand::IDENTIFY.cdb16().to_vec(),
            hex("85 08 0e 00 00 00 01 00 00 00 00 00 00 00 ec 00")
        );
        assert_eq!(
            AtaCommand::IDENTIFY.cdb12().to_vec(),
            hex("a1 08 0e 00 01 00 00 00 00 ec 00 00")
        );
        assert_eq!(
            AtaCommand::SMART_READ_DATA.cdb16().to_vec(),
            hex("85 08 0e 00 d0 00 01 00 00 00 4f 00 c2 00 b0 00")
        );
        assert_eq!(
            AtaCommand::SMART_READ_DATA.cdb12().to_vec(),
            hex("a1 08 0e d0 01 00 4f c2 00 b0 00 00")
        );
        assert_eq!(
            AtaCommand::SMART_READ_THRESHOLDS.cdb16().to_vec(),
            hex("85 08 0e 00 d1 00 01 00 00 00 4f 00 c2 00 b0 00")
        );
        assert_eq!(
            AtaCommand::SMART_READ_THRESHOLDS.cdb12().to_vec(),
            hex("a1 08 0e d1 01 00 4f c2 00 b0 00 00")
        );
        assert_eq!(
            AtaCommand::SMART_RETURN_STATUS.cdb16().to_vec(),
            hex("85 06 20 00 da 00 00 00 00 00 4f 00 c2 00 b0 00")
        );
        assert_eq!(
            AtaCommand::SMART_RETURN_STATUS.cdb12().to_vec(),
            hex("a1 06 20 da 00 00 4f c2 00 b0 00 00")
        );
        // READ LOG EXT of the GP log directory, and of two pages of log 0x03 from page 1.
        assert_eq!(
            AtaCommand::read_log_ext_cdb16(0x00, 0, 1).to_vec(),
            hex("85 09 0e 00 00 00 01 00 00 00 00 00 00 00 2f 00")
        );
        assert_eq!(
            AtaCommand::read_log_ext_cdb16(0x03, 0x0201, 2).to_vec(),
            hex("85 09 0e 00 00 00 02 00 03 02 01 00 00 00 2f 00")
        );
        // SMART READ LOG: log address in LBA low (the QEMU test reads 0x01 and 0x06 so).
        assert_eq!(
            AtaCommand::smart_read_log(0x06).cdb16().to_vec(),
            hex("85 08 0e 00 d5 00 01 00 06 00 4f 00 c2 00 b0 00")
        );
        assert_eq!(
            AtaCommand::smart_read_log(0x01).cdb12().to_vec(),
            hex("a1 08 0e d5 01 01 4f c2 00 b0 00 00")
        );
    }

    #[test]
    fn return_status_sense_from_qemu() {
        let s = hex("72 01 00 1d 00 00 00 0e 09 0c 00 00 00 00 00 00 00 4f 00 c2 00 50");
        let p = parse_sense(&s).unwrap();
        assert_eq!((p.key, p.asc, p.ascq), (1, 0, 0x1D));
        let r = p.ata.unwrap();
        assert_eq!((r.lba_mid, r.lba_high, r.status), (0x4F, 0xC2, 0x50));
        assert_eq!(smart_status(&r), Some(SmartStatus::Good));
        let o = SgOutcome {
            status: 2,
            driver_status: 8,
            sense: s,
            info: 1,
            ..Default::default()
        };
        assert_eq!(judge(&o), PtResult::Ok(Some(r)));
        let failing = AtaRegisters {
            lba_mid: 0xF4,
            lba_high: 0x2C,
            ..r
        };
        assert_eq!(smart_status(&failing), Some(SmartStatus::Failing));
        assert_eq!(smart_status(&AtaRegisters::default()), None);
    }

    #[test]
    fn usb_storage_without_sat_is_unsupported() {
        // QEMU usb-storage (46f4:0001) answering an ATA PASS-THROUGH.
        let s = hex("70 00 05 00 00 00 00 0a 00 00 00 00 20 00 00 00 00 00");
        let o = SgOutcome {
            status: 2,
            driver_status: 8,
            sense: s,
            resid: 512,
            info: 1,
            ..Default::default()
        };
        match judge(&o) {
            PtResult::Unsupported(s) => {
                assert!(s.describe().contains("invalid command operation code"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fixed_format_registers_and_ata_errors() {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = 0x01;
        s[12] = 0x00;
        s[13] = 0x1D;
        s[3] = 0x04; // error ABRT
        s[4] = 0x51; // status DRDY|DSC|ERR
        s[10] = 0x4F;
        s[11] = 0xC2;
        let p = parse_sense(&s).unwrap();
        let r = p.ata.unwrap();
        assert_eq!(
            (r.error, r.status, r.lba_mid, r.lba_high),
            (4, 0x51, 0x4F, 0xC2)
        );
        let o = SgOutcome {
            status: 2,
            sense: s,
            ..Default::default()
        };
        assert_eq!(judge(&o), PtResult::AtaError(r));
        let o = SgOutcome {
            host_status: 7,
            ..Default::default()
        };
        assert!(matches!(judge(&o), PtResult::Failed(_)));
    }

    #[test]
    fn malformed_sense_never_panics() {
        for len in 0..40 {
            for fill in [0x00u8, 0x72, 0x70, 0xFF, 0x09] {
                let mut s = vec![fill; len];
                if len > 0 {
                    s[0] = 0x72;
                }
                let _ = parse_sense(&s);
                if len > 7 {
                    s[7] = 0xFF;
                }
                let _ = parse_sense(&s);
                let _ = judge(&SgOutcome {
                    status: 2,
                    sense: s,
                    ..Default::default()
                });
            }
        }
    }

    #[test]
    fn nvme_tunnel_cdbs() {
        // Get Log Page 0x02, NUMDL 127.
        let c = asmedia_nvme_cdb(0x02, 0x007F_0002);
        assert_eq!(&c[..8], &[0xE6, 0x02, 0, 0x02, 0, 0, 0, 0x7F]);
        let c = realtek_nvme_cdb(0x06, 1, 4096);
        assert_eq!(&c[..5], &[0xE4, 0x00, 0x10, 0x06, 0x01]);
        let c = jmicron_cdb(2, 512);
        assert_eq!(c, [0xA1, 0x82, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0]);
        let b = jmicron_command_block(0x02, 0xFFFF_FFFF, [0x007F_0002, 0, 0, 0, 0, 0]);
        assert_eq!(&b[..4], b"NVME");
        assert_eq!(b[8], 0x02);
        assert_eq!(&b[12..16], &[0xFF; 4]);
        assert_eq!(&b[48..52], &0x007F_0002u32.to_le_bytes());
        let mut r = [0u8; 512];
        r[..4].copy_from_slice(b"NVME");
        r[8] = 7;
        assert_eq!(jmicron_response(&r), Ok(7));
        r[20..24].copy_from_slice(&(2u32 << 17).to_le_bytes());
        assert!(jmicron_response(&r).is_err());
        assert!(jmicron_response(&r[..10]).is_err());
    }
}
