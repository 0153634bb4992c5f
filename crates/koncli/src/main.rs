//! `koncli`: parse the command line, run it, exit with its code. See the library.

use std::io::Write;

fn main() {
    quiet_on_broken_pipe();
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(koncli::run::SUPERVISE)) {
        supervise();
    }
    let cli = match koncli::cli::Cli::try_parse_checked() {
        Ok(cli) => cli,
        Err(error)
            if error.use_stderr()
                && error.kind()
                    != clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            eprintln!("{}", koncli::cli::one_line(&error));
            std::process::exit(i32::from(koncli::EXIT_USAGE));
        }
        // --help, --version, or a command without its subcommand: help, as clap shows it.
        Err(shown) => shown.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start: {error}", koncli::program_name());
            std::process::exit(i32::from(koncli::EXIT_ERROR));
        }
    };
    let code = runtime.block_on(koncli::run(cli));
    // Exit at once, without tearing down the runtime and its connections: whoever
    // waits for `koncli barrier wait` to exit (a script, an initContainer) goes on
    // that much sooner. Everything printed is flushed first (stderr is unbuffered).
    let _ = std::io::stdout().flush();
    std::process::exit(i32::from(code));
}

/// Runs as the supervisor `run` started (`koncli __supervise …`), then exits.
fn supervise() -> ! {
    use clap::Parser;
    let args = koncli::run::SuperviseArgs::parse_from(
        std::env::args_os()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, arg)| arg),
    );
    let code = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_or(koncli::EXIT_ERROR, |runtime| {
            runtime.block_on(koncli::run::supervise(args))
        });
    std::process::exit(i32::from(code));
}

/// A closed stdout (`koncli … | head -3`) ends the command quietly, as it does for
/// other Unix tools (and ripgrep), instead of a panic with a backtrace: printing to a
/// closed pipe panics with "failed printing to stdout: Broken pipe", caught here.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
