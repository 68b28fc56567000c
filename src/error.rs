//! The exit-status policy, decided in one place. Commands return an [`Outcome`] (or an error);
//! `main` maps it to a process exit status with [`exit_code`]. `docs/exit-codes.md` documents
//! the numbers; keep the two in step.

/// Everything worked and the answer is the good one.
pub const EXIT_OK: i32 = 0;
/// The command could not do its job: unreadable input, I/O error, refused operation.
pub const EXIT_FAILURE: i32 = 1;
/// The command line was wrong (clap uses 2 as well).
pub const EXIT_USAGE: i32 = 2;
/// `inspect`: the disk or image was read fine, but it is not a Home Assistant OS disk
/// (an external data disk counts as HAOS media and exits 0).
pub const EXIT_NOT_HAOS: i32 = 3;
/// `backup check`: the backup failed the check (Home Assistant would not restore it, the data
/// is damaged, or the password is wrong).
pub const EXIT_CHECK_FAILED: i32 = 4;
/// `backup check`: encrypted contents could not be checked (no password); the rest passed.
pub const EXIT_CHECK_INCOMPLETE: i32 = 5;
/// `image`: the image was written, but some sectors could not be read (zero-filled, listed).
pub const EXIT_IMAGE_INCOMPLETE: i32 = 6;
/// `verify`: the image or the device does not match what it was checked against.
pub const EXIT_VERIFY_FAILED: i32 = 7;

/// What a command achieved, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    NotHaos,
    /// `backup check`: verdict "failed".
    CheckFailed,
    /// `backup check`: verdict "incomplete".
    CheckIncomplete,
    /// `health`: the exit-status bit mask (docs/exit-codes.md; bits in `health::exit_bits`).
    Health(u8),
    /// `image`: written, with unreadable sectors zero-filled.
    ImageIncomplete,
    /// `verify`: a check failed (mismatching ranges or hashes).
    VerifyFailed,
}

/// The process exit status for a command's result.
pub fn exit_code(result: &anyhow::Result<Outcome>) -> i32 {
    match result {
        Ok(Outcome::Ok) => EXIT_OK,
        Ok(Outcome::NotHaos) => EXIT_NOT_HAOS,
        Ok(Outcome::CheckFailed) => EXIT_CHECK_FAILED,
        Ok(Outcome::CheckIncomplete) => EXIT_CHECK_INCOMPLETE,
        Ok(Outcome::Health(mask)) => i32::from(*mask),
        Ok(Outcome::ImageIncomplete) => EXIT_IMAGE_INCOMPLETE,
        Ok(Outcome::VerifyFailed) => EXIT_VERIFY_FAILED,
        Err(_) => EXIT_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(exit_code(&Ok(Outcome::Ok)), 0);
        assert_eq!(exit_code(&Ok(Outcome::NotHaos)), 3);
        assert_eq!(exit_code(&Ok(Outcome::CheckFailed)), 4);
        assert_eq!(exit_code(&Ok(Outcome::CheckIncomplete)), 5);
        assert_eq!(exit_code(&Ok(Outcome::ImageIncomplete)), 6);
        assert_eq!(exit_code(&Ok(Outcome::VerifyFailed)), 7);
        assert_eq!(exit_code(&Ok(Outcome::Health(0))), 0);
        assert_eq!(exit_code(&Ok(Outcome::Health(8 | 32))), 40);
        assert_eq!(exit_code(&Err(anyhow::anyhow!("x"))), 1);
    }
}
