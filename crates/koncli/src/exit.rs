//! Exit codes, and the name koncli goes by in its messages.

/// The exit codes, shown in `--help` and the README.
pub const EXIT_CODES: &str = "\
Exit codes (every non-zero exit prints one line on stderr saying why):
  0  success; `wait`: the barrier is Open; `arrive`: the arrival (or failure) is
     recorded, or was already recorded as asked
  1  error: barrier not found, forbidden, invalid, credentials refused, server
     unreachable at the start, ...; `arrive --failed` for a holder that already
     arrived (its arrival stands)
  2  usage error: unknown flag, missing or invalid argument
  3  `wait`: the barrier (WaitGroup, Gate) timed out (phase Timeout)
  4  `wait`: the barrier failed (phase Failed: failures made it unreachable, or its
     spec is invalid); the WaitGroup failed (more than maxFailed members failed); the
     Gate (or `koncli wait`) failed (a failure test held, or a condition can no
     longer be met)
  5  `wait`, `arrive --wait-for-barrier`, lock and once commands: --timeout passed first
  6  `lock`/`acquire`/`rlock` without --wait: the lock is held by others (busy)
  7  `run`: the grant (a WaitGroup member's hold) was lost (renewals
     unacknowledged, expired, or its claim deleted); the command was stopped
  8  `once run|wait|check`: the work failed for good for the key (every allowed
     attempt failed; `once reset` allows a new try)
  9  `once check`: the work is not done for the key (not yet run, or running)
  126/127  `run`: the command is not executable / not found (nothing was acquired)
  130/143  a lock command interrupted by SIGINT/SIGTERM while waiting (the claim
     was withdrawn)
  `run` otherwise exits with the command's own code (128+N if a signal N ended it)";

/// Exit code: the barrier is open / the command succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (not found, forbidden, invalid, unreachable, …).
pub const EXIT_ERROR: u8 = 1;
/// Usage error: unknown flag, missing or invalid argument (one line says which).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the barrier timed out.
pub const EXIT_BARRIER_TIMEOUT: u8 = 3;
/// Exit code: the barrier failed.
pub const EXIT_BARRIER_FAILED: u8 = 4;
/// Exit code: `wait --timeout` (or a lock command's --timeout) passed first.
pub const EXIT_WAIT_TIMEOUT: u8 = 5;
/// Exit code: the lock is held by others and the command did not wait.
pub const EXIT_BUSY: u8 = 6;
/// Exit code: `run` lost its grant (expired or its permit deleted).
pub const EXIT_LOST: u8 = 7;
/// Exit code: a Once's work failed for good for the key.
pub const EXIT_ONCE_FAILED: u8 = 8;
/// Exit code: `once check`: the work is not done for the key.
pub const EXIT_NOT_DONE: u8 = 9;

/// The name koncli goes by in its messages: `kubectl konductor` when run as a kubectl
/// plugin, `koncli` otherwise.
pub fn program_name() -> &'static str {
    static NAME: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let plugin = std::env::args_os()
            .next()
            .is_some_and(|program| is_kubectl_plugin(&program));
        if plugin {
            KUBECTL_PLUGIN_NAME
        } else {
            "koncli"
        }
    })
}

/// How kubectl users call koncli once it is installed as `kubectl-konductor`.
pub const KUBECTL_PLUGIN_NAME: &str = "kubectl konductor";

/// Whether the program was started under its kubectl plugin name.
pub fn is_kubectl_plugin(program: &std::ffi::OsStr) -> bool {
    std::path::Path::new(program)
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.trim_end_matches(".exe") == "kubectl-konductor")
}
