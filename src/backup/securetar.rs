//! SecureTar, the encryption Home Assistant wraps around each inner archive of a protected
//! backup: reading v1, v2 and v3, writing v2 and v3, streaming with flat memory (one 1 MiB
//! buffer per stream, whatever the archive size).
//!
//! - v1 (securetar ≤ 2024.11): 16-byte salt, AES-128-CBC, no size, broken padding (see
//!   ha-backup-format.md §4.3). [`Reader`] hands out the raw decrypted bytes without stripping
//!   padding; the gzip layer ([`super::gzip`]) stops at the end of the deflate stream.
//! - v2: `SecureTar\x02` header (48 bytes) with the plaintext size, AES-128-CBC, PKCS#7.
//! - v3: `SecureTar\x03` header (136 bytes), Argon2id root key checked against a stored
//!   validation key (a wrong password is known before any data is read), BLAKE2b file key,
//!   XChaCha20-Poly1305 secretstream in 1 MiB chunks, every chunk authenticated.
//!
//! Reading: make a [`KeyRing`] from the password once per backup (it runs Argon2 once per
//! distinct root salt), then a [`Reader`] over each member's bytes. Writing: make one
//! [`EncryptionKey`] per backup (v3 archives of one backup must share the root salt), then a
//! [`Writer`] per inner archive, which needs the exact plaintext size up front (it is in the
//! header and v3 chunking depends on it). [`encrypted_len`] gives the member size to put in
//! the outer tar header before writing.

use super::crypto::{self, CbcDecrypt, CbcEncrypt};
use super::password::Password;
use super::secretstream::{self, Pull, Push};
use serde::Serialize;
use std::io::{self, Read, Write};
use thiserror::Error;
use zeroize::Zeroizing;

/// The magic at the start of v2 and v3 files.
pub const MAGIC: &[u8; 9] = b"SecureTar";
/// Length of the v1 header (the salt).
pub const V1_HEADER_LEN: usize = 16;
/// Length of the v2 header.
pub const V2_HEADER_LEN: usize = 48;
/// Length of the v3 header.
pub const V3_HEADER_LEN: usize = 136;
/// Plaintext bytes per v3 secretstream chunk.
pub const V3_CHUNK: usize = 1 << 20;
/// Size of the buffer each stream works through.
const BUF: usize = 1 << 20;

/// A SecureTar format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "u8")]
pub enum Version {
    V1,
    V2,
    V3,
}

impl From<Version> for u8 {
    fn from(v: Version) -> u8 {
        match v {
            Version::V1 => 1,
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}", u8::from(*self))
    }
}

/// Why SecureTar data could not be read or written.
#[derive(Debug, Error)]
pub enum SecureTarError {
    #[error("wrong password (v3 key check failed)")]
    WrongPassword,
    #[error(
        "wrong password, or not SecureTar {0} data: the decrypted start is neither gzip nor tar"
    )]
    NotGzipOrTar(Version),
    #[error("SecureTar version {0} is not known (this reader knows 1, 2 and 3)")]
    UnsupportedVersion(u8),
    #[error("SecureTar header has non-zero reserved bytes (damaged or not SecureTar)")]
    Reserved,
    #[error("truncated: {have} bytes of SecureTar {version} data, {need} expected")]
    Truncated {
        version: Version,
        have: u64,
        need: u64,
    },
    #[error("truncated or damaged: AES data of {0} bytes is not a whole number of 16-byte blocks")]
    NotBlockAligned(u64),
    #[error("bad PKCS#7 padding at the end (wrong password, or the data is damaged)")]
    BadPadding,
    #[error("damaged or altered: chunk {chunk} (at plaintext byte {offset}) fails authentication")]
    Authentication { chunk: u64, offset: u64 },
    #[error("damaged: the stream says it is finished at byte {at}, the header promises {size}")]
    EarlyFinal { at: u64, size: u64 },
    #[error("truncated or damaged: the last chunk is not marked final")]
    MissingFinal,
    #[error("cannot write SecureTar {0}: lifeboat writes only v2 and v3")]
    CannotWrite(Version),
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl From<SecureTarError> for io::Error {
    fn from(e: SecureTarError) -> io::Error {
        match e {
            SecureTarError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// The SecureTar error inside an I/O error, if that is what it is.
pub fn as_securetar(e: &io::Error) -> Option<&SecureTarError> {
    e.get_ref().and_then(|i| i.downcast_ref::<SecureTarError>())
}

/// The cipher-initialisation part of a header.
#[derive(Clone, PartialEq, Eq)]
pub enum CipherInit {
    /// v1/v2: the salt the IV is derived from.
    Aes { salt: [u8; 16] },
    /// v3.
    V3 {
        root_salt: [u8; 16],
        validation_salt: [u8; 16],
        validation_key: [u8; 32],
        derivation_salt: [u8; 16],
        stream_header: [u8; 24],
    },
}

impl std::fmt::Debug for CipherInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CipherInit::Aes { .. } => f.write_str("Aes"),
            CipherInit::V3 { .. } => f.write_str("V3"),
        }
    }
}

/// A parsed SecureTar header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    /// Exact plaintext length (v2, v3); v1 has none. securetar leaves it 0 in v2 files it
    /// writes outside an outer tar, so for v2 it is a claim, not a fact.
    pub plaintext_size: Option<u64>,
    pub init: CipherInit,
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

/// What the first bytes of an inner archive are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Gzip,
    Tar,
    /// `SecureTar` magic with version 2 or 3.
    SecureTar(Version),
    /// Neither gzip, tar nor magic: SecureTar v1 when the backup is protected, else damage.
    Unknown,
}

/// Classify the first bytes (up to 512) of an inner archive.
pub fn sniff(head: &[u8]) -> Kind {
    if head.len() >= 10 && &head[..9] == MAGIC {
        return match head[9] {
            2 => Kind::SecureTar(Version::V2),
            3 => Kind::SecureTar(Version::V3),
            _ => Kind::Unknown,
        };
    }
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        return Kind::Gzip;
    }
    if head.get(257..262) == Some(b"ustar") {
        return Kind::Tar;
    }
    Kind::Unknown
}

impl Header {
    /// Parse a header from the start of `b`: `Ok(None)` when `b` is too short to tell.
    /// No magic means v1 (the first 16 bytes are the salt).
    pub fn parse(b: &[u8]) -> Result<Option<Header>, SecureTarError> {
        if b.len() < 16 {
            return Ok(None);
        }
        if &b[..9] != MAGIC {
            return Ok(Some(Header {
                version: Version::V1,
                plaintext_size: None,
                init: CipherInit::Aes { salt: arr(b) },
            }));
        }
        let version = match b[9] {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(SecureTarError::UnsupportedVersion(v)),
        };
        if b[10..16].iter().any(|&x| x != 0) {
            return Err(SecureTarError::Reserved);
        }
        let need = if version == Version::V2 {
            V2_HEADER_LEN
        } else {
            V3_HEADER_LEN
        };
        if b.len() < need {
            return Ok(None);
        }
        let plaintext_size = Some(u64::from_be_bytes(arr(&b[16..24])));
        let init = if version == Version::V2 {
            CipherInit::Aes {
                salt: arr(&b[32..48]),
            }
        } else {
            CipherInit::V3 {
                root_salt: arr(&b[32..48]),
                validation_salt: arr(&b[48..64]),
                validation_key: arr(&b[64..96]),
                derivation_salt: arr(&b[96..112]),
                stream_header: arr(&b[112..136]),
            }
        };
        Ok(Some(Header {
            version,
            plaintext_size,
            init,
        }))
    }

    /// Length of this header on disk.
    pub fn len(&self) -> usize {
        match self.version {
            Version::V1 => V1_HEADER_LEN,
            Version::V2 => V2_HEADER_LEN,
            Version::V3 => V3_HEADER_LEN,
        }
    }

    /// Always false: a header has bytes (here for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Serialise (v2 and v3 only; v1 is never written).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SecureTarError> {
        if self.version == Version::V1 {
            return Err(SecureTarError::CannotWrite(Version::V1));
        }
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(MAGIC);
        v.push(u8::from(self.version));
        v.extend_from_slice(&[0u8; 6]);
        v.extend_from_slice(&self.plaintext_size.unwrap_or(0).to_be_bytes());
        v.extend_from_slice(&[0u8; 8]);
        match &self.init {
            CipherInit::Aes { salt } => v.extend_from_slice(salt),
            CipherInit::V3 {
                root_salt,
                validation_salt,
                validation_key,
                derivation_salt,
                stream_header,
            } => {
                v.extend_from_slice(root_salt);
                v.extend_from_slice(validation_salt);
                v.extend_from_slice(validation_key);
                v.extend_from_slice(derivation_salt);
                v.extend_from_slice(stream_header);
            }
        }
        Ok(v)
    }
}

/// Number of v3 chunks for `n` plaintext bytes (at least one).
pub fn v3_chunks(n: u64) -> u64 {
    n.div_ceil(V3_CHUNK as u64).max(1)
}

/// Ciphertext length after the header for `n` plaintext bytes (v1/v2 with full PKCS#7).
pub fn ciphertext_len(version: Version, n: u64) -> u64 {
    match version {
        Version::V1 | Version::V2 => (n / 16 + 1) * 16,
        Version::V3 => n + secretstream::ABYTES as u64 * v3_chunks(n),
    }
}

/// Whole encrypted length (header + ciphertext) of `n` plaintext bytes: the outer tar member
/// size of an inner archive written by [`Writer`].
pub fn encrypted_len(version: Version, n: u64) -> u64 {
    let h = match version {
        Version::V1 => V1_HEADER_LEN,
        Version::V2 => V2_HEADER_LEN,
        Version::V3 => V3_HEADER_LEN,
    } as u64;
    h + ciphertext_len(version, n)
}

struct V3Root {
    root_salt: [u8; 16],
    validation_salt: [u8; 16],
    validation_key: [u8; 32],
    root_key: Zeroizing<[u8; 32]>,
}

/// The per-file key and IV/stream header.
enum FileKey {
    Aes {
        key: Zeroizing<[u8; 16]>,
        iv: [u8; 16],
    },
    V3 {
        key: Zeroizing<[u8; 32]>,
        header: [u8; 24],
    },
}

/// Decryption keys derived from one password, cached for all inner archives of a backup.
pub struct KeyRing {
    password: Password,
    aes: Option<Zeroizing<[u8; 16]>>,
    v3: Vec<V3Root>,
}

impl KeyRing {
    pub fn new(password: Password) -> Self {
        Self {
            password,
            aes: None,
            v3: Vec::new(),
        }
    }

    fn aes_key(&mut self) -> Zeroizing<[u8; 16]> {
        let pw = &self.password;
        self.aes
            .get_or_insert_with(|| crypto::aes_key(pw.as_bytes()))
            .clone()
    }

    fn v3_root(
        &mut self,
        root_salt: &[u8; 16],
        validation_salt: &[u8; 16],
        validation_key: &[u8; 32],
    ) -> Result<Zeroizing<[u8; 32]>, SecureTarError> {
        if let Some(r) = self.v3.iter().find(|r| {
            &r.root_salt == root_salt
                && &r.validation_salt == validation_salt
                && &r.validation_key == validation_key
        }) {
            return Ok(r.root_key.clone());
        }
        let root_key = crypto::argon2id_root_key(self.password.as_bytes(), root_salt);
        let check = crypto::blake2b_derive(&root_key, validation_salt);
        if !crypto::ct_eq(&check[..], validation_key) {
            return Err(SecureTarError::WrongPassword);
        }
        self.v3.push(V3Root {
            root_salt: *root_salt,
            validation_salt: *validation_salt,
            validation_key: *validation_key,
            root_key: root_key.clone(),
        });
        Ok(root_key)
    }

    /// Check the password against a v3 header without reading data (Argon2 runs once per
    /// root salt). For v1/v2 there is nothing to check it against: `Ok(false)`, and the
    /// [`Reader`] checks the first decrypted block instead. `Ok(true)`: v3 key verified.
    pub fn check(&mut self, header: &Header) -> Result<bool, SecureTarError> {
        match &header.init {
            CipherInit::V3 {
                root_salt,
                validation_salt,
                validation_key,
                ..
            } => {
                self.v3_root(root_salt, validation_salt, validation_key)?;
                Ok(true)
            }
            CipherInit::Aes { .. } => Ok(false),
        }
    }

    fn file_key(&mut self, header: &Header) -> Result<FileKey, SecureTarError> {
        match &header.init {
            CipherInit::Aes { salt } => {
                let key = self.aes_key();
                let iv = crypto::aes_iv(&key, salt);
                Ok(FileKey::Aes { key, iv })
            }
            CipherInit::V3 {
                root_salt,
                validation_salt,
                validation_key,
                derivation_salt,
                stream_header,
            } => {
                let root = self.v3_root(root_salt, validation_salt, validation_key)?;
                Ok(FileKey::V3 {
                    key: crypto::blake2b_derive(&root, derivation_salt),
                    header: *stream_header,
                })
            }
        }
    }
}

/// Read exactly `buf.len()` bytes, or report how many arrived before the end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

enum Mode {
    Aes { dec: Box<CbcDecrypt>, strict: bool },
    V3 { pull: Pull, chunk: u64 },
}

/// Decrypting reader over one SecureTar member: `Read` gives the plaintext (the inner
/// `.tar.gz` or `.tar` bytes). Memory: one buffer of 1 MiB + 17 bytes.
pub struct Reader<R: Read> {
    src: R,
    header: Header,
    version: Version,
    /// Ciphertext bytes still to take from `src`, and in all.
    left: u64,
    ct_total: u64,
    /// Bytes after the expected v3 ciphertext, ignored.
    trailing: u64,
    mode: Mode,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    produced: u64,
    validated: bool,
    finished: bool,
}

impl<R: Read> Reader<R> {
    /// Start decrypting a member of `member_len` bytes (header included) read from `src`.
    /// Reads and parses the header; for v3 checks the password right away.
    pub fn new(mut src: R, member_len: u64, keys: &mut KeyRing) -> Result<Self, SecureTarError> {
        let mut head = [0u8; V3_HEADER_LEN];
        let want = (V3_HEADER_LEN as u64).min(member_len) as usize;
        // Read 16 bytes first: a v1 file's data starts right after them.
        let got = read_full(&mut src, &mut head[..want.min(16)])?;
        let short = |have: usize, need: usize, version| SecureTarError::Truncated {
            version,
            have: have as u64,
            need: need as u64,
        };
        if got < 16 {
            return Err(short(got, 16, Version::V1));
        }
        let mut hlen = 16;
        let header = if &head[..9] == MAGIC {
            let need = if head[9] == 3 {
                V3_HEADER_LEN
            } else {
                V2_HEADER_LEN
            };
            let got = read_full(&mut src, &mut head[16..need.min(want)])?;
            hlen += got;
            let v = if head[9] == 3 {
                Version::V3
            } else {
                Version::V2
            };
            match Header::parse(&head[..hlen])? {
                Some(h) => h,
                None => return Err(short(hlen, need, v)),
            }
        } else {
            match Header::parse(&head[..16])? {
                Some(h) => h,
                None => return Err(short(hlen, 16, Version::V1)),
            }
        };
        let version = header.version;
        let ct = member_len - header.len() as u64;
        let key = keys.file_key(&header)?;
        let (mode, left, trailing) = match key {
            FileKey::Aes { key, iv } => {
                if ct == 0 || !ct.is_multiple_of(16) {
                    return Err(SecureTarError::NotBlockAligned(ct));
                }
                (
                    Mode::Aes {
                        dec: Box::new(CbcDecrypt::new(&key, &iv)),
                        strict: version == Version::V2,
                    },
                    ct,
                    0,
                )
            }
            FileKey::V3 { key, header: sh } => {
                let n = header.plaintext_size.unwrap_or(0);
                let need = ciphertext_len(Version::V3, n);
                if ct < need {
                    return Err(SecureTarError::Truncated {
                        version,
                        have: member_len,
                        need: need + V3_HEADER_LEN as u64,
                    });
                }
                (
                    Mode::V3 {
                        pull: Pull::new(&key, &sh),
                        chunk: 0,
                    },
                    need,
                    ct - need,
                )
            }
        };
        let cap = match mode {
            Mode::Aes { .. } => BUF,
            Mode::V3 { .. } => V3_CHUNK + secretstream::ABYTES,
        };
        Ok(Self {
            src,
            header,
            version,
            left,
            ct_total: left,
            trailing,
            mode,
            buf: vec![0u8; cap],
            pos: 0,
            end: 0,
            produced: 0,
            validated: false,
            finished: false,
        })
    }

    /// The header as read.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Plaintext bytes handed out so far (after the end: the plaintext length).
    pub fn plaintext_read(&self) -> u64 {
        self.produced
    }

    /// Bytes after the v3 ciphertext the header accounts for (ignored, as securetar does).
    pub fn trailing_bytes(&self) -> u64 {
        self.trailing
    }

    /// True once the whole ciphertext was consumed and authenticated.
    pub fn is_finished(&self) -> bool {
        self.finished && self.pos == self.end
    }

    /// Give back the source (positioned after the ciphertext once finished).
    pub fn into_inner(self) -> R {
        self.src
    }

    fn truncated(&self, got: usize) -> SecureTarError {
        let h = self.header.len() as u64;
        SecureTarError::Truncated {
            version: self.version,
            have: h + self.ct_total - self.left + got as u64,
            need: h + self.ct_total,
        }
    }

    fn fill(&mut self) -> Result<(), SecureTarError> {
        self.pos = 0;
        self.end = 0;
        if self.left == 0 {
            self.finished = true;
            return Ok(());
        }
        match &mut self.mode {
            Mode::Aes { dec, strict } => {
                let n = (self.buf.len() as u64).min(self.left) as usize;
                let got = read_full(&mut self.src, &mut self.buf[..n])?;
                if got < n {
                    let e = self.truncated(got);
                    return Err(e);
                }
                self.left -= n as u64;
                dec.blocks(&mut self.buf[..n]);
                let mut end = n;
                if !self.validated {
                    self.validated = true;
                    if !matches!(sniff(&self.buf[..n.min(512)]), Kind::Gzip | Kind::Tar) {
                        return Err(SecureTarError::NotGzipOrTar(self.version));
                    }
                }
                if self.left == 0 {
                    self.finished = true;
                    if *strict {
                        let p = self.buf[n - 1] as usize;
                        if p == 0
                            || p > 16
                            || p > n
                            || self.buf[n - p..n].iter().any(|&b| b as usize != p)
                        {
                            return Err(SecureTarError::BadPadding);
                        }
                        end = n - p;
                    }
                }
                self.end = end;
            }
            Mode::V3 { pull, chunk } => {
                let n = ((V3_CHUNK + secretstream::ABYTES) as u64).min(self.left) as usize;
                let got = read_full(&mut self.src, &mut self.buf[..n])?;
                if got < n {
                    let e = self.truncated(got);
                    return Err(e);
                }
                self.left -= n as u64;
                let offset = self.produced;
                let (tag, m) =
                    pull.pull(&mut self.buf[..n])
                        .map_err(|_| SecureTarError::Authentication {
                            chunk: *chunk,
                            offset,
                        })?;
                let m = m.len();
                *chunk += 1;
                let is_final = tag == secretstream::TAG_FINAL;
                if is_final && self.left > 0 {
                    return Err(SecureTarError::EarlyFinal {
                        at: offset + m as u64,
                        size: self.header.plaintext_size.unwrap_or(0),
                    });
                }
                if self.left == 0 {
                    if !is_final {
                        return Err(SecureTarError::MissingFinal);
                    }
                    self.finished = true;
                }
                self.pos = 1;
                self.end = 1 + m;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.end {
            if self.finished || out.is_empty() {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}

enum RootKey {
    V2 {
        key: Zeroizing<[u8; 16]>,
    },
    V3 {
        root_key: Zeroizing<[u8; 32]>,
        root_salt: [u8; 16],
        validation_salt: [u8; 16],
        validation_key: [u8; 32],
    },
}

/// The key material for writing one backup: derived once (v3: one Argon2 run with a fresh
/// root salt), shared by every inner archive, each of which gets its own random salt.
pub struct EncryptionKey {
    root: RootKey,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptionKey({})", self.version())
    }
}

impl EncryptionKey {
    /// Derive the key for writing `version` (2 or 3) archives with `password`.
    pub fn new(password: &Password, version: Version) -> Result<Self, SecureTarError> {
        match version {
            Version::V1 => Err(SecureTarError::CannotWrite(Version::V1)),
            Version::V2 => Ok(Self {
                root: RootKey::V2 {
                    key: crypto::aes_key(password.as_bytes()),
                },
            }),
            Version::V3 => {
                let mut root_salt = [0u8; 16];
                let mut validation_salt = [0u8; 16];
                crypto::random(&mut root_salt)?;
                crypto::random(&mut validation_salt)?;
                Ok(Self::v3_with_salts(password, root_salt, validation_salt))
            }
        }
    }

    /// A v3 key with given salts (reproducible output for tests).
    pub fn v3_with_salts(
        password: &Password,
        root_salt: [u8; 16],
        validation_salt: [u8; 16],
    ) -> Self {
        let root_key = crypto::argon2id_root_key(password.as_bytes(), &root_salt);
        let validation_key = *crypto::blake2b_derive(&root_key, &validation_salt);
        Self {
            root: RootKey::V3 {
                root_key,
                root_salt,
                validation_salt,
                validation_key,
            },
        }
    }

    /// The version this key writes.
    pub fn version(&self) -> Version {
        match self.root {
            RootKey::V2 { .. } => Version::V2,
            RootKey::V3 { .. } => Version::V3,
        }
    }

    fn new_file(&self, plaintext_size: u64) -> io::Result<(Header, WMode)> {
        match &self.root {
            RootKey::V2 { key } => {
                let mut salt = [0u8; 16];
                crypto::random(&mut salt)?;
                let iv = crypto::aes_iv(key, &salt);
                Ok((
                    Header {
                        version: Version::V2,
                        plaintext_size: Some(plaintext_size),
                        init: CipherInit::Aes { salt },
                    },
                    WMode::Aes(Box::new(CbcEncrypt::new(key, &iv))),
                ))
            }
            RootKey::V3 {
                root_key,
                root_salt,
                validation_salt,
                validation_key,
            } => {
                let mut derivation_salt = [0u8; 16];
                let mut stream_header = [0u8; 24];
                crypto::random(&mut derivation_salt)?;
                crypto::random(&mut stream_header)?;
                let file_key = crypto::blake2b_derive(root_key, &derivation_salt);
                Ok((
                    Header {
                        version: Version::V3,
                        plaintext_size: Some(plaintext_size),
                        init: CipherInit::V3 {
                            root_salt: *root_salt,
                            validation_salt: *validation_salt,
                            validation_key: *validation_key,
                            derivation_salt,
                            stream_header,
                        },
                    },
                    WMode::V3(Push::new(&file_key, &stream_header)),
                ))
            }
        }
    }
}

enum WMode {
    Aes(Box<CbcEncrypt>),
    V3(Push),
}

/// Encrypting writer for one inner archive: writes the header, then `Write` takes exactly
/// the declared number of plaintext bytes; [`Writer::finish`] writes the last chunk or the
/// padding. The output is [`encrypted_len`] bytes long. Memory: about 2 MiB.
pub struct Writer<W: Write> {
    dest: W,
    declared: u64,
    taken: u64,
    mode: WMode,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Start an encrypted stream of exactly `plaintext_size` bytes into `dest`.
    pub fn new(mut dest: W, key: &EncryptionKey, plaintext_size: u64) -> io::Result<Self> {
        let (header, mode) = key.new_file(plaintext_size)?;
        dest.write_all(&header.to_bytes()?)?;
        Ok(Self {
            dest,
            declared: plaintext_size,
            taken: 0,
            mode,
            buf: Vec::with_capacity(BUF),
            out: Vec::with_capacity(BUF + secretstream::ABYTES),
        })
    }

    fn flush_full(&mut self) -> io::Result<()> {
        match &mut self.mode {
            WMode::Aes(enc) => {
                let whole = self.buf.len() / 16 * 16;
                enc.blocks(&mut self.buf[..whole]);
                self.dest.write_all(&self.buf[..whole])?;
                self.buf.drain(..whole);
            }
            WMode::V3(push) => {
                self.out.clear();
                push.push(&self.buf, secretstream::TAG_MESSAGE, &mut self.out);
                self.dest.write_all(&self.out)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Write the end of the stream; fails if fewer bytes than declared were written.
    pub fn finish(mut self) -> io::Result<W> {
        if self.taken != self.declared {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "SecureTar writer got {} bytes, {} were declared",
                    self.taken, self.declared
                ),
            ));
        }
        match &mut self.mode {
            WMode::Aes(enc) => {
                let p = 16 - self.buf.len() % 16;
                self.buf.extend(std::iter::repeat_n(p as u8, p));
                enc.blocks(&mut self.buf);
                self.dest.write_all(&self.buf)?;
            }
            WMode::V3(push) => {
                self.out.clear();
                push.push(&self.buf, secretstream::TAG_FINAL, &mut self.out);
                self.dest.write_all(&self.out)?;
            }
        }
        self.buf.clear();
        self.dest.flush()?;
        Ok(self.dest)
    }
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.taken + data.len() as u64 > self.declared {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "SecureTar writer: more than the declared {} plaintext bytes",
                    self.declared
                ),
            ));
        }
        let room = BUF - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.taken += n as u64;
        // A full buffer is flushed only when more data follows: the last full v3 chunk
        // carries the FINAL tag, written by finish().
        if self.buf.len() == BUF && self.taken < self.declared {
            self.flush_full()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.dest.flush()
    }
}

/// Encrypt all of `src` (exactly `plaintext_size` bytes) into `dest`; returns the bytes
/// written (header included).
pub fn encrypt_stream(
    src: &mut impl Read,
    dest: impl Write,
    key: &EncryptionKey,
    plaintext_size: u64,
) -> io::Result<u64> {
    let mut w = Writer::new(dest, key, plaintext_size)?;
    let copied = io::copy(&mut src.take(plaintext_size), &mut w)?;
    if copied != plaintext_size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("source ended after {copied} of {plaintext_size} bytes"),
        ));
    }
    w.finish()?;
    Ok(encrypted_len(key.version(), plaintext_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::new(s)
    }

    fn gz_like(n: usize) -> Vec<u8> {
        let mut v: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
        if n >= 3 {
            v[..3].copy_from_slice(&[0x1f, 0x8b, 0x08]);
        }
        v
    }

    fn roundtrip(version: Version, n: usize) {
        let key = match version {
            Version::V3 => EncryptionKey::v3_with_salts(&pw("pw"), [1; 16], [2; 16]),
            v => EncryptionKey::new(&pw("pw"), v).unwrap(),
        };
        let data = gz_like(n);
        let mut out = Vec::new();
        let len = encrypt_stream(&mut &data[..], &mut out, &key, n as u64).unwrap();
        assert_eq!(len, out.len() as u64, "encrypted_len for {version} n={n}");
        let mut ring = KeyRing::new(pw("pw"));
        let mut r = Reader::new(&out[..], out.len() as u64, &mut ring).unwrap();
        assert_eq!(r.header().plaintext_size, Some(n as u64));
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), n);
        assert!(back == data, "{version} n={n}");
        assert!(r.is_finished());
    }

    #[test]
    fn roundtrips_at_chunk_edges() {
        for n in [
            3usize,
            15,
            16,
            17,
            512,
            V3_CHUNK - 1,
            V3_CHUNK,
            V3_CHUNK + 1,
            2 * V3_CHUNK,
        ] {
            roundtrip(Version::V2, n);
            roundtrip(Version::V3, n);
        }
    }

    #[test]
    fn v3_empty_is_one_final_chunk() {
        let key = EncryptionKey::v3_with_salts(&pw("pw"), [1; 16], [2; 16]);
        let mut out = Vec::new();
        encrypt_stream(&mut &[][..], &mut out, &key, 0).unwrap();
        assert_eq!(out.len(), V3_HEADER_LEN + 17);
        let mut r = Reader::new(&out[..], out.len() as u64, &mut KeyRing::new(pw("pw"))).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn lengths() {
        assert_eq!(ciphertext_len(Version::V2, 0), 16);
        assert_eq!(ciphertext_len(Version::V2, 16), 32);
        assert_eq!(ciphertext_len(Version::V3, 0), 17);
        assert_eq!(ciphertext_len(Version::V3, 1 << 20), (1 << 20) + 17);
        assert_eq!(
            ciphertext_len(Version::V3, (1 << 20) + 1),
            (1 << 20) + 1 + 34
        );
        assert_eq!(encrypted_len(Version::V3, 5), 136 + 22);
    }

    #[test]
    fn wrong_password_v3_fails_fast() {
        let key = EncryptionKey::v3_with_salts(&pw("right"), [1; 16], [2; 16]);
        let mut out = Vec::new();
        encrypt_stream(&mut &gz_like(100)[..], &mut out, &key, 100).unwrap();
        let e = Reader::new(&out[..], out.len() as u64, &mut KeyRing::new(pw("wrong")))
            .err()
            .unwrap();
        assert!(matches!(e, SecureTarError::WrongPassword));
        assert_eq!(e.to_string(), "wrong password (v3 key check failed)");
    }

    #[test]
    fn wrong_password_v2_detected_by_content() {
        let key = EncryptionKey::new(&pw("right"), Version::V2).unwrap();
        let mut out = Vec::new();
        encrypt_stream(&mut &gz_like(2000)[..], &mut out, &key, 2000).unwrap();
        let mut r =
            Reader::new(&out[..], out.len() as u64, &mut KeyRing::new(pw("wrong"))).unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(
            as_securetar(&e),
            Some(SecureTarError::NotGzipOrTar(Version::V2))
        ));
    }

    #[test]
    fn truncation_and_tampering() {
        let key = EncryptionKey::v3_with_salts(&pw("pw"), [1; 16], [2; 16]);
        let n = V3_CHUNK + 100;
        let mut out = Vec::new();
        encrypt_stream(&mut &gz_like(n)[..], &mut out, &key, n as u64).unwrap();
        let cut = &out[..out.len() - 50];
        let e = Reader::new(cut, cut.len() as u64, &mut KeyRing::new(pw("pw")))
            .err()
            .unwrap();
        assert!(matches!(e, SecureTarError::Truncated { .. }), "{e}");
        let mut bad = out.clone();
        bad[V3_HEADER_LEN + 1000] ^= 0x40;
        let mut r = Reader::new(&bad[..], bad.len() as u64, &mut KeyRing::new(pw("pw"))).unwrap();
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                as_securetar(&e),
                Some(SecureTarError::Authentication { chunk: 0, .. })
            ),
            "{e}"
        );
        // v2: a truncated file is not block aligned or has bad padding.
        let key2 = EncryptionKey::new(&pw("pw"), Version::V2).unwrap();
        let mut out2 = Vec::new();
        encrypt_stream(&mut &gz_like(1000)[..], &mut out2, &key2, 1000).unwrap();
        let e = Reader::new(
            &out2[..out2.len() - 5],
            out2.len() as u64 - 5,
            &mut KeyRing::new(pw("pw")),
        )
        .err()
        .unwrap();
        assert!(matches!(e, SecureTarError::NotBlockAligned(_)));
    }

    #[test]
    fn header_parse_rules() {
        assert!(Header::parse(&[0u8; 10]).unwrap().is_none());
        let v1 = Header::parse(&[7u8; 16]).unwrap().unwrap();
        assert_eq!(v1.version, Version::V1);
        let mut h = b"SecureTar\x09".to_vec();
        h.resize(48, 0);
        assert!(matches!(
            Header::parse(&h),
            Err(SecureTarError::UnsupportedVersion(9))
        ));
        h[9] = 2;
        h[12] = 1;
        assert!(matches!(Header::parse(&h), Err(SecureTarError::Reserved)));
        h[12] = 0;
        h[16..24].copy_from_slice(&1234u64.to_be_bytes());
        let p = Header::parse(&h).unwrap().unwrap();
        assert_eq!(p.plaintext_size, Some(1234));
        assert_eq!(p.to_bytes().unwrap(), h);
        assert_eq!(sniff(&h), Kind::SecureTar(Version::V2));
        assert_eq!(sniff(&[0x1f, 0x8b, 0x08, 0]), Kind::Gzip);
    }
}
