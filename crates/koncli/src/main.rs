//! `koncli`: parse the command line, run it, exit with its code. See the library.

use std::io::Write;

fn main() {
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
            eprintln!("koncli: cannot start: {error}");
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
