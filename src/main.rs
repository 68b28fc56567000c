//! The `lifeboat` binary: parse the command line, run the command, map the result to an
//! exit status. All work happens in the library.

use clap::Parser;
use lifeboat::cli::{Cli, Command};
use lifeboat::{cmd, error, report};

fn main() {
    let cli = Cli::parse();
    let out = report::Output::new(cli.json, cli.quiet);
    let result = match &cli.command {
        Command::List(a) => cmd::list::run(a, &out),
        Command::Inspect(a) => cmd::inspect::run(a, &out),
        Command::Backup(a) => cmd::backup::run(a, &out),
        Command::Health(a) => cmd::health::run(a, &out),
        Command::Image(a) => cmd::image::run(a, &out),
        Command::Verify(a) => cmd::verify::run(a, &out),
        Command::ReportImage(a) => cmd::report_image::run(a, &out),
        Command::MediaTest(a) => cmd::media_test::run(a, &out),
        Command::Flash(a) => cmd::flash::run(a, &out),
        Command::Clone(a) => cmd::clone::run(a, &out),
        Command::Shrink(a) => cmd::shrink::run(a, &out),
        Command::Udev(a) => cmd::udev::run(a, &out),
    };
    if let Err(e) = &result {
        out.error(e);
    }
    std::process::exit(error::exit_code(&result));
}
