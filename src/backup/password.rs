//! Backup passwords: the [`Password`] type (wiped on drop, never printed or serialised) and
//! where one comes from — `--password-file`, the `LIFEBOAT_BACKUP_PASSWORD` environment
//! variable, a Home Assistant emergency-kit file (`--emergency-kit`), or a prompt on the
//! terminal without echo. There is deliberately no way to pass a password on the command line.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Environment variable that may hold the backup password.
pub const PASSWORD_ENV: &str = "LIFEBOAT_BACKUP_PASSWORD";

/// A password files and kits are never larger than this.
const MAX_PASSWORD_FILE: u64 = 64 << 10;

/// A backup password. `Debug` shows `<redacted>`; there is no `Display` and no `Serialize`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wrap a password string as given (the whole emergency-kit key, dashes included).
    pub fn new(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }
    /// The UTF-8 bytes SecureTar's key derivations take.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
    /// True for the empty password.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Where the password is to come from, as the command line said.
#[derive(Debug, Clone, Default)]
pub struct PasswordSource {
    /// `--password-file FILE` (`-` = standard input): the first line.
    pub file: Option<PathBuf>,
    /// `--emergency-kit FILE`: the key in Home Assistant's emergency-kit text.
    pub emergency_kit: Option<PathBuf>,
    /// Whether a terminal prompt is allowed when nothing else gives a password.
    pub prompt: bool,
}

fn read_small(path: &Path) -> Result<Zeroizing<String>> {
    use std::io::Read;
    let mut s = Zeroizing::new(String::new());
    if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_PASSWORD_FILE)
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        return Ok(s);
    }
    let f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_PASSWORD_FILE {
        anyhow::bail!(
            "{}: {len} bytes is too large for a password or emergency-kit file",
            path.display()
        );
    }
    f.take(MAX_PASSWORD_FILE)
        .read_to_string(&mut s)
        .with_context(|| format!("{}: cannot read (not UTF-8 text?)", path.display()))?;
    Ok(s)
}

/// The password in a password file: its first line, without the line ending.
pub fn from_password_text(text: &str) -> Password {
    let line = text.split('\n').next().unwrap_or("");
    Password::new(line.strip_suffix('\r').unwrap_or(line))
}

fn is_kit_key(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 34
        && b.iter().enumerate().all(|(i, &c)| {
            if i % 5 == 4 {
                c == b'-'
            } else {
                c.is_ascii_uppercase() || c.is_ascii_digit()
            }
        })
}

/// The encryption key in the text of a Home Assistant backup emergency kit: the line after
/// `Encryption key:` (or on the same line), else the first `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`
/// anywhere in the text.
pub fn from_emergency_kit(text: &str) -> Option<Password> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("Encryption key:") {
            let rest = rest.trim();
            if !rest.is_empty() {
                return Some(Password::new(rest));
            }
            if let Some(next) = lines[i + 1..].iter().find(|n| !n.is_empty()) {
                return Some(Password::new(*next));
            }
        }
    }
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if word.len() >= 34 {
            for start in 0..=word.len() - 34 {
                if let Some(cand) = word.get(start..start + 34)
                    && is_kit_key(cand)
                {
                    return Some(Password::new(cand));
                }
            }
        }
    }
    None
}

/// Get the password: `--password-file`, then `--emergency-kit`, then the environment
/// variable, then (when allowed and a terminal is there) a prompt without echo. `Ok(None)`
/// when none of these gives one.
pub fn obtain(src: &PasswordSource, what: &str) -> Result<Option<Password>> {
    if let Some(p) = &src.file {
        let text = read_small(p)?;
        let pw = from_password_text(&text);
        if pw.is_empty() {
            anyhow::bail!(
                "{}: the first line is empty, no password in it",
                p.display()
            );
        }
        return Ok(Some(pw));
    }
    if let Some(p) = &src.emergency_kit {
        let text = read_small(p)?;
        return from_emergency_kit(&text).map(Some).with_context(|| {
            format!(
                "{}: no encryption key found (expected a line 'Encryption key:' followed by \
                 the key, or a key like XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX)",
                p.display()
            )
        });
    }
    if let Some(v) = std::env::var_os(PASSWORD_ENV) {
        let s = v
            .into_string()
            .map_err(|_| anyhow::anyhow!("{PASSWORD_ENV} is not valid UTF-8"))?;
        return Ok(Some(Password::new(s)));
    }
    if src.prompt
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .is_ok()
    {
        let s = rpassword::prompt_password(format!("Password for {what}: "))
            .context("reading the password from the terminal")?;
        return Ok(Some(Password::new(s)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_is_redacted() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert_eq!(p.as_bytes(), b"hunter2");
    }

    #[test]
    fn password_file_first_line() {
        assert_eq!(from_password_text("abc\n").as_bytes(), b"abc");
        assert_eq!(from_password_text("abc\r\nsecond").as_bytes(), b"abc");
        assert_eq!(from_password_text(" spaced pw ").as_bytes(), b" spaced pw ");
        assert!(from_password_text("\nx").is_empty());
    }

    #[test]
    fn emergency_kit_formats() {
        let kit = "Home Assistant Backup Emergency Kit\n\nDate: 2026-11-20 04:45\n\
                   Instance: Home\nURL: http://homeassistant.local:8123/\n\nEncryption key:\n\
                   ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01\n\nFor more information visit: \
                   http://homeassistant.local:8123/more-info/backup-emergency-kit\n";
        assert_eq!(
            from_emergency_kit(kit).unwrap().as_bytes(),
            b"ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01"
        );
        assert_eq!(
            from_emergency_kit("Encryption key: K3Y0-AAAA-BBBB-CCCC-DDDD-EEEE-FFFF")
                .unwrap()
                .as_bytes(),
            b"K3Y0-AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"
        );
        assert_eq!(
            from_emergency_kit("my key is 1234-5678-90AB-CDEF-GHIJ-KLMN-OPQR, keep it")
                .unwrap()
                .as_bytes(),
            b"1234-5678-90AB-CDEF-GHIJ-KLMN-OPQR"
        );
        assert!(from_emergency_kit("nothing here abcd-efgh").is_none());
    }
}
