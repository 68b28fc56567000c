//! gzip for inner archives, done by hand over raw deflate so both kinds of data Home Assistant
//! produced can be read: strict ([`GzipReader::strict`]: CRC-32 and length checked, a truncated
//! stream is an error) and lenient for SecureTar v1 ([`GzipReader::lenient`]: stop at the end
//! of the deflate stream and ignore the trailer, which v1's padding bug broke).
//! [`repair_v1`] rewrites a v1 gzip stream with a correct trailer, deflate bytes unchanged.

use crc32fast::Hasher;
use flate2::{Decompress, FlushDecompress, Status};
use std::io::{self, BufRead, Read, Write};

/// Longest FNAME/FCOMMENT field accepted.
const MAX_FIELD: usize = 64 << 10;

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn eof(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_string())
}

fn read_exact_copy(src: &mut impl BufRead, buf: &mut [u8], copy: &mut Vec<u8>) -> io::Result<()> {
    src.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            eof("gzip header truncated")
        } else {
            e
        }
    })?;
    copy.extend_from_slice(buf);
    Ok(())
}

/// Parse a gzip member header from `src`; returns its raw bytes.
fn read_header(src: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut h = [0u8; 10];
    read_exact_copy(src, &mut h, &mut raw)?;
    if h[0] != 0x1f || h[1] != 0x8b {
        return Err(bad("not gzip data (no 1f 8b magic)"));
    }
    if h[2] != 8 {
        return Err(bad(format!(
            "gzip compression method {} is not deflate",
            h[2]
        )));
    }
    let flg = h[3];
    if flg & 0x04 != 0 {
        let mut l = [0u8; 2];
        read_exact_copy(src, &mut l, &mut raw)?;
        let mut extra = vec![0u8; u16::from_le_bytes(l) as usize];
        read_exact_copy(src, &mut extra, &mut raw)?;
    }
    for bit in [0x08u8, 0x10] {
        if flg & bit != 0 {
            let mut b = [0u8; 1];
            let mut n = 0;
            loop {
                read_exact_copy(src, &mut b, &mut raw)?;
                if b[0] == 0 {
                    break;
                }
                n += 1;
                if n > MAX_FIELD {
                    return Err(bad("gzip header name/comment field is absurdly long"));
                }
            }
        }
    }
    if flg & 0x02 != 0 {
        let mut c = [0u8; 2];
        read_exact_copy(src, &mut c, &mut raw)?;
    }
    Ok(raw)
}

/// A gzip decoder over a buffered source.
pub struct GzipReader<R: BufRead> {
    src: R,
    z: Decompress,
    crc: Hasher,
    size: u64,
    lenient: bool,
    header_done: bool,
    done: bool,
}

impl<R: BufRead> GzipReader<R> {
    /// CRC and length checked at the end; the stream must be complete.
    pub fn strict(src: R) -> Self {
        Self::new(src, false)
    }
    /// For SecureTar v1: ends at the end of the deflate stream, trailer ignored.
    pub fn lenient(src: R) -> Self {
        Self::new(src, true)
    }
    fn new(src: R, lenient: bool) -> Self {
        Self {
            src,
            z: Decompress::new(false),
            crc: Hasher::new(),
            size: 0,
            lenient,
            header_done: false,
            done: false,
        }
    }
    /// Uncompressed bytes produced so far.
    pub fn uncompressed(&self) -> u64 {
        self.size
    }
    /// The source, positioned after what was consumed.
    pub fn into_inner(self) -> R {
        self.src
    }

    fn trailer(&mut self) -> io::Result<()> {
        if self.lenient {
            return Ok(());
        }
        let mut t = [0u8; 8];
        self.src
            .read_exact(&mut t)
            .map_err(|_| eof("gzip trailer missing: the data is truncated"))?;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let ours = self.crc.clone().finalize();
        if crc != ours {
            return Err(bad(format!(
                "gzip CRC-32 mismatch (stored {crc:08x}, computed {ours:08x}): the data is damaged"
            )));
        }
        if isize != self.size as u32 {
            return Err(bad("gzip length field does not match the data: damaged"));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for GzipReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.header_done {
            read_header(&mut self.src)?;
            self.header_done = true;
        }
        if self.done || out.is_empty() {
            return Ok(0);
        }
        loop {
            let input = self.src.fill_buf()?;
            let at_eof = input.is_empty();
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(input, out, FlushDecompress::None)
                .map_err(|e| bad(format!("gzip data is damaged: {e}")))?;
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            self.src.consume(used);
            self.crc.update(&out[..made]);
            self.size += made as u64;
            if status == Status::StreamEnd {
                self.done = true;
                self.trailer()?;
                return Ok(made);
            }
            if made > 0 {
                return Ok(made);
            }
            if at_eof {
                return Err(eof(
                    "gzip data is truncated (the deflate stream does not end)",
                ));
            }
            if used == 0 {
                return Err(bad("gzip decoder made no progress: damaged data"));
            }
        }
    }
}

/// Copy a SecureTar v1 gzip stream from `src` to `out` with its trailer repaired: the header
/// and deflate bytes as they are, then the right CRC-32 and length. Returns bytes written.
pub fn repair_v1(src: impl Read, out: &mut impl Write) -> io::Result<u64> {
    let mut src = io::BufReader::with_capacity(1 << 20, src);
    let header = read_header(&mut src)?;
    out.write_all(&header)?;
    let mut written = header.len() as u64;
    let mut z = Decompress::new(false);
    let mut crc = Hasher::new();
    let mut scratch = vec![0u8; 1 << 20];
    loop {
        let input = src.fill_buf()?;
        if input.is_empty() {
            return Err(eof(
                "gzip data is truncated (the deflate stream does not end)",
            ));
        }
        let (in0, out0) = (z.total_in(), z.total_out());
        let status = z
            .decompress(input, &mut scratch, FlushDecompress::None)
            .map_err(|e| bad(format!("gzip data is damaged: {e}")))?;
        let used = (z.total_in() - in0) as usize;
        let made = (z.total_out() - out0) as usize;
        out.write_all(&input[..used])?;
        written += used as u64;
        crc.update(&scratch[..made]);
        src.consume(used);
        if status == Status::StreamEnd {
            break;
        }
        if used == 0 && made == 0 {
            return Err(bad("gzip decoder made no progress: damaged data"));
        }
    }
    out.write_all(&crc.finalize().to_le_bytes())?;
    out.write_all(&(z.total_out() as u32).to_le_bytes())?;
    Ok(written + 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn data() -> Vec<u8> {
        (0..300_000u32)
            .map(|i| (i % 97) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn strict_reads_and_checks_crc() {
        let d = data();
        let z = gz(&d);
        let mut out = Vec::new();
        GzipReader::strict(&z[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, d);
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 6] ^= 1; // CRC byte
        let e = GzipReader::strict(&bad[..])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("CRC-32 mismatch"), "{e}");
        let e = GzipReader::strict(&z[..z.len() / 2])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = GzipReader::strict(&z[..z.len() - 4])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("trailer"), "{e}");
        let e = GzipReader::strict(&b"nope, not gzip"[..])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("not gzip"), "{e}");
    }

    /// What securetar ≤ 2024.11 produced: padding after the deflate tail, the CRC and the size.
    fn v1_mangle(z: &[u8]) -> Vec<u8> {
        let n = z.len();
        let mut v = z[..n - 8].to_vec();
        let pad = 16 - v.len() % 16;
        v.extend(std::iter::repeat_n(pad as u8, pad));
        v.extend_from_slice(&z[n - 8..n - 4]);
        v.extend(std::iter::repeat_n(12u8, 12));
        v.extend_from_slice(&z[n - 4..]);
        v.extend(std::iter::repeat_n(12u8, 12));
        v
    }

    #[test]
    fn lenient_reads_v1_padding_bug_and_repair_fixes_it() {
        let d = data();
        let mangled = v1_mangle(&gz(&d));
        assert!(
            GzipReader::strict(&mangled[..])
                .read_to_end(&mut Vec::new())
                .is_err()
        );
        let mut out = Vec::new();
        GzipReader::lenient(&mangled[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, d);
        let mut fixed = Vec::new();
        let n = repair_v1(&mangled[..], &mut fixed).unwrap();
        assert_eq!(n as usize, fixed.len());
        assert_eq!(fixed, gz(&d), "deflate bytes kept, trailer recomputed");
    }

    #[test]
    fn header_fields_are_skipped() {
        // FNAME + FCOMMENT + FEXTRA + FHCRC
        let z = gz(b"hello");
        let mut v = z[..10].to_vec();
        v[3] = 0x1e;
        v.extend_from_slice(&[3, 0, 1, 2, 3]);
        v.extend_from_slice(b"name\0comment\0");
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&z[10..]);
        let mut out = Vec::new();
        GzipReader::strict(&v[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
    }
}
