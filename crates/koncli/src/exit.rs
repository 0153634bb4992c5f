//! Exit codes, and the name koncli goes by in its messages.

/// The exit codes, shown in `--help` and the README.
pub const EXIT_CODES: &str = "\
Exit codes (every non-zero exit prints one last line on stderr saying why):
  0  success: the object is Open / Done / Succeeded; the work ran and succeeded, or
     was already done (nothing ran); an act was recorded (or already was, as asked)
  1  error: not found, forbidden, invalid, credentials refused, server unreachable
     (\"cannot reach the API server at URL: cause\"), the namespace or the kind's CRD
     missing, ...
  2  usage error: unknown flag, missing or invalid argument, a test a kind cannot have
  3  the object timed out by its own timeout (phase Timeout)
  4  the object failed (phase Failed): a barrier that can no longer open, a WaitGroup
     with more than maxFailed failed members, a Gate (or `wait --for`) whose failure
     test held or that can no longer open
  5  --timeout passed first (for `run`: nothing ran)
  6  `lock`/`acquire`/`rlock` (`ratelimit take`) without --wait: the lock is held by
     others, or the window is full (busy); `run --if-busy fail` on a busy lock
  7  `run`: the grant (a member's hold) was lost; the command was stopped
  8  failed for good: a Once key or a WaitGroup member whose every allowed attempt
     failed (`once reset --key K` allows a new try); nothing ran
  9  `once check`: the work is not done for the key
  10 `run --if-busy skip`: a lock was busy, so the command was skipped (not run;
     --skip-exit N to exit N instead)
  126/127  `run`: the command is not executable / not found (nothing was claimed)
  130/143  interrupted by SIGINT / SIGTERM while waiting (a queued claim is withdrawn)
  `run` otherwise exits with its command's own code (128+N if signal N ended it); a
  command's own 1-9 overlap the codes above, so the last stderr line says whether a
  non-zero code is koncli's or the command's";

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an error (not found, forbidden, invalid, unreachable, …).
pub const EXIT_ERROR: u8 = 1;
/// Usage error: unknown flag, missing or invalid argument (one line says which).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the object timed out by its own timeout (phase Timeout).
pub const EXIT_TIMED_OUT: u8 = 3;
/// Exit code: the object failed (phase Failed).
pub const EXIT_FAILED: u8 = 4;
/// Exit code: the command's `--timeout` passed first.
pub const EXIT_WAIT_TIMEOUT: u8 = 5;
/// Exit code: the lock is held by others and the command did not wait.
pub const EXIT_BUSY: u8 = 6;
/// Exit code: `run` lost its grant (expired or its claim deleted).
pub const EXIT_LOST: u8 = 7;
/// Exit code: the work failed for good (a Once key, a WaitGroup member).
pub const EXIT_FAILED_FOR_GOOD: u8 = 8;
/// Exit code: `once check`: the work is not done for the key.
pub const EXIT_NOT_DONE: u8 = 9;
/// Exit code: `run --if-busy skip` skipped its command because a lock was busy (a skip
/// is not a success; `--skip-exit` changes it).
pub const EXIT_SKIPPED: u8 = 10;
/// Exit code: interrupted by SIGINT while waiting (128 + 2, as a shell reports it).
pub const EXIT_SIGINT: u8 = 130;
/// Exit code: interrupted by SIGTERM while waiting (128 + 15, as a shell reports it).
pub const EXIT_SIGTERM: u8 = 143;

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
