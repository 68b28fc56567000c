//! One module per subcommand: each turns parsed arguments into a result, hands it to
//! [`report::Output`](crate::report::Output), and returns an [`Outcome`](crate::error::Outcome).

pub mod backup;
pub mod clone;
pub mod flash;
pub mod health;
pub mod image;
pub mod inspect;
pub mod list;
pub mod media_test;
pub mod report_image;
pub mod shrink;
pub mod udev;
pub mod verify;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A flag that the first SIGINT, SIGTERM or SIGHUP sets (the long-running commands check it
/// and stop cleanly: wipe a half-written disk, remove temp files); a second signal while
/// stopping ends the process at once with status 130.
pub(crate) fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop));
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    stop
}
