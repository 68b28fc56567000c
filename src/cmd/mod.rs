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
