//! The supervision every `koncli … run NAME -- CMD` shares (a lock's, a Once's, a
//! WaitGroup member's): the command runs while a claim is held, as `flock(1)` holds a
//! file; what claim, and what its end reports, is the kind's (`locks::run`,
//! `once`, `waitgroup`).
//!
//! ```text
//! koncli … run ──spawns──▶ koncli __supervise ──spawns──▶ CMD (and its children)
//!   holds the grant,         leads the process group      in the supervisor's group
//!   renews it, signals       CMD runs in; dies with
//!   the group                koncli (PR_SET_PDEATHSIG)
//! ```
//!
//! koncli acquires, starts the supervisor in a process group of its own, and forwards
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT to that group. When the grant is lost (renewals
//! unacknowledged until the margin, an expiry, a deleted claim) it sends the group
//! SIGTERM, then SIGKILL after the grace ([`konductor_sdk::claims::held::Timing`]) — a shell's
//! children too — so the command is gone before the grant can have run out on the
//! controller's clock. When koncli dies, even by SIGKILL, the kernel tells the
//! supervisor (its parent-death signal), which stops the group the same way: a command
//! never outlives the koncli holding its lock. No `unsafe` is needed: the supervisor
//! sets its own parent-death signal (and checks its parent is still there after).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::exit::{EXIT_ERROR, EXIT_LOST};
use crate::signals::Interrupts;

/// The first argument that makes koncli the supervisor `run` starts between itself
/// and the command — an internal entry point, not part of the command line (no help,
/// no completion).
pub const SUPERVISE: &str = "__supervise";

/// What `run` starts between itself and the command (`koncli __supervise …`).
#[derive(clap::Parser, Debug)]
#[command(name = "koncli __supervise")]
pub struct SuperviseArgs {
    /// The process id of the `koncli … run` that started this supervisor.
    #[arg(long)]
    pub parent: i32,
    /// Between SIGTERM and SIGKILL when the parent dies, in milliseconds.
    #[arg(long)]
    pub grace_ms: u64,
    /// The process group to hand the terminal back to when the command exits.
    #[arg(long)]
    pub terminal_owner: Option<i32>,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

/// Exit code: the command was found but cannot be executed (as shells report it).
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit code: the command was not found (as shells report it).
pub const EXIT_NOT_FOUND: u8 = 127;

/// Whether `program` can be started: found (a path, or on `$PATH`) and executable;
/// else the exit code and message a shell would give. Checked before anything is
/// acquired, so a typo takes no fencing token.
pub fn check_runnable(program: &str) -> Result<(), (u8, String)> {
    let executable = |path: &std::path::Path| {
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = std::path::Path::new(program);
        return match path.metadata() {
            Err(_) => Err((
                EXIT_NOT_FOUND,
                format!("{program}: no such file or directory"),
            )),
            Ok(_) if !executable(path) => Err((
                EXIT_NOT_EXECUTABLE,
                format!("{program}: permission denied (not an executable file)"),
            )),
            Ok(_) => Ok(()),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut found_but_not_executable = false;
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        if executable(&candidate) {
            return Ok(());
        }
        found_but_not_executable |= candidate.exists();
    }
    if found_but_not_executable {
        Err((
            EXIT_NOT_EXECUTABLE,
            format!("{program}: permission denied (not an executable file)"),
        ))
    } else {
        Err((EXIT_NOT_FOUND, format!("{program}: command not found")))
    }
}

/// The terminal the command should own while it runs: stdin's, when it is one and
/// koncli's process group is in its foreground (an interactive command in a group of
/// its own could not read from it otherwise).
fn terminal_to_hand_over() -> Option<Pid> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    let own = rustix::process::getpgrp();
    (rustix::termios::tcgetpgrp(&stdin).ok()? == own).then_some(own)
}

/// Sends `signal` to the process group `group`; one already gone is fine.
fn signal_group(group: Pid, signal: Signal) {
    if let Err(error) = rustix::process::kill_process_group(group, signal)
        && error != rustix::io::Errno::SRCH
    {
        eprintln!(
            "{}: signalling the command: {error}",
            crate::exit::program_name()
        );
    }
}

/// Stops whatever is left in `group` once the command has exited: SIGTERM, then
/// SIGKILL after `grace` — the lock is released next, and nothing may go on without it.
async fn sweep(group: Pid, grace: Duration) {
    let alive = || rustix::process::test_kill_process_group(group).is_ok();
    if !alive() {
        return;
    }
    signal_group(group, Signal::TERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal_group(group, Signal::KILL);
}

/// The exit code for a process's end: its own, or 128+N for signal N.
fn code_of(status: std::io::Result<std::process::ExitStatus>) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .and_then(|code| u8::try_from(code).ok())
            .unwrap_or(EXIT_ERROR),
        Err(error) => {
            eprintln!(
                "{}: waiting for the command: {error}",
                crate::exit::program_name()
            );
            EXIT_ERROR
        }
    }
}

/// How a supervised command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// It exited 0: it succeeded (even after a signal).
    Succeeded,
    /// It exited non-zero without having been signalled through koncli: it failed.
    Failed(u8),
    /// It exited non-zero after koncli forwarded it a signal (SIGINT, SIGTERM, SIGHUP,
    /// SIGQUIT): its work was interrupted, not failed.
    Interrupted(u8),
    /// The grant was lost: it was stopped.
    Lost,
    /// It could not be started (said on stderr).
    NotStarted,
}

impl Ran {
    /// The exit code `run` passes through: the command's own (128+N if signal N ended
    /// it), 7 if the grant was lost, 1 if it never started.
    pub fn code(self) -> u8 {
        match self {
            Ran::Succeeded => 0,
            Ran::Failed(code) | Ran::Interrupted(code) => code,
            Ran::Lost => EXIT_LOST,
            Ran::NotStarted => EXIT_ERROR,
        }
    }

    /// Says on stderr, as the last line, whose a non-zero code is — the command's own,
    /// passed through — and what became of the claim (`then`); returns the code.
    pub fn report(self, what: &str, program: &str, then: &str) -> u8 {
        let name = crate::exit::program_name();
        match self {
            Ran::Failed(code) => eprintln!(
                "{name}: {what}: {program} exited with code {code} (its own code, passed through); {then}"
            ),
            Ran::Interrupted(code) => eprintln!(
                "{name}: {what}: {program} was interrupted (exit code {code}, passed through); {then}"
            ),
            Ran::Succeeded | Ran::Lost | Ran::NotStarted => {}
        }
        self.code()
    }
}

/// The environment a command run under one fencing token gets:
/// `$KONDUCTOR_FENCING_TOKEN`.
pub fn token_env(token: i64) -> Vec<(String, String)> {
    vec![(FENCING_TOKEN_ENV.to_owned(), token.to_string())]
}

/// The variable that carries a run's fencing token (the first lock's, for several).
pub const FENCING_TOKEN_ENV: &str = "KONDUCTOR_FENCING_TOKEN";

/// Runs `command` under the supervisor, with `env` added to its environment (the
/// fencing tokens),
/// forwarding `interrupts` to it and stopping its group (SIGTERM, SIGKILL after the
/// grace of `timing`) when `lost` resolves; `what` names the claim in messages. At the
/// first signal forwarded, `mark` runs (it marks the claim *interrupting*) while the
/// claim stays renewed until the command is gone. Every kind whose claim is held
/// around a command (`… run`) runs it this way.
pub async fn supervised(
    command: &[String],
    env: &[(String, String)],
    timing: konductor_sdk::claims::held::Timing,
    lost: impl std::future::Future<Output = konductor_sdk::claims::held::Loss>,
    interrupts: &mut Interrupts,
    what: &str,
    mark: impl std::future::Future<Output = ()>,
) -> Ran {
    let (program, arguments) = command.split_first().expect("clap requires a command");
    let terminal = terminal_to_hand_over();
    let mut supervisor =
        tokio::process::Command::new(std::env::current_exe().unwrap_or_else(|_| "koncli".into()));
    supervisor
        .arg(SUPERVISE)
        .arg("--parent")
        .arg(std::process::id().to_string())
        .arg("--grace-ms")
        .arg(timing.grace.as_millis().to_string());
    if let Some(owner) = terminal {
        supervisor
            .arg("--terminal-owner")
            .arg(owner.as_raw_nonzero().to_string());
    }
    supervisor
        .arg("--")
        .arg(program)
        .args(arguments)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .process_group(0);
    let mut child = match supervisor.spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!(
                "{}: cannot start {program}: {error}",
                crate::exit::program_name()
            );
            return Ran::NotStarted;
        }
    };
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
        .expect("a started process has an id");
    if terminal.is_some() && rustix::termios::tcsetpgrp(std::io::stdin(), group).is_ok() {
        // Had it tried to read the terminal before it was handed over, it stopped.
        signal_group(group, Signal::CONT);
    }
    tokio::pin!(lost);
    tokio::pin!(mark);
    let mut lost_grant = false;
    let mut interrupted = false;
    let mut marked = false;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            signal = interrupts.next() => {
                signal_group(group, signal);
                interrupted = true;
            }
            () = &mut mark, if interrupted && !marked => marked = true,
            loss = &mut lost, if !lost_grant => {
                lost_grant = true;
                eprintln!(
                    "{}: {what}: the grant was lost: {loss}; stopping the command (SIGTERM, SIGKILL in {})",
                    crate::exit::program_name(),
                    crate::output::short_duration(timing.grace)
                );
                signal_group(group, Signal::TERM);
                kill_at = Some(tokio::time::Instant::now() + timing.grace);
            }
            () = async { tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)).await }, if kill_at.is_some() => {
                signal_group(group, Signal::KILL);
                kill_at = None;
            }
        }
    };
    sweep(group, timing.grace).await;
    if lost_grant {
        return Ran::Lost;
    }
    match code_of(status) {
        0 => Ran::Succeeded,
        code if interrupted => Ran::Interrupted(code),
        code => Ran::Failed(code),
    }
}

/// `__supervise`: runs the command in this (new) process group and stops the whole
/// group — SIGTERM, then SIGKILL after the grace — if the `koncli … run` that started
/// it dies. Signals meant for the command reach it through the group; the supervisor
/// ignores them. Exits with the command's code (128+N if signal N ended it).
pub async fn supervise(args: SuperviseArgs) -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let parent_died = signal(SignalKind::user_defined1());
    if let Err(error) = rustix::process::set_parent_process_death_signal(Some(Signal::USR1)) {
        eprintln!(
            "{}: cannot watch for koncli's death: {error}",
            crate::exit::program_name()
        );
        return EXIT_ERROR;
    }
    // The parent may have died before the death signal was set: then it is not ours.
    if rustix::process::getppid()
        .map(Pid::as_raw_nonzero)
        .map(i32::from)
        != Some(args.parent)
    {
        return EXIT_ERROR;
    }
    let mut parent_died = match parent_died {
        Ok(signal) => signal,
        Err(error) => {
            eprintln!(
                "{}: cannot watch for koncli's death: {error}",
                crate::exit::program_name()
            );
            return EXIT_ERROR;
        }
    };
    // Meant for the command, which gets them through the group: ignored here.
    let _ignored = [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ]
    .map(signal);
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut child = match tokio::process::Command::new(program).args(rest).spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!(
                "{}: cannot run {program}: {error}",
                crate::exit::program_name()
            );
            return if error.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_NOT_EXECUTABLE
            };
        }
    };
    tokio::select! {
        status = child.wait() => {
            // Give the terminal back — only from its foreground (a background group
            // asking would be stopped).
            let stdin = std::io::stdin();
            let foreground = rustix::termios::tcgetpgrp(&stdin).ok() == Some(rustix::process::getpgrp());
            if let Some(owner) = args.terminal_owner.and_then(Pid::from_raw).filter(|_| foreground) {
                let _ = rustix::termios::tcsetpgrp(&stdin, owner);
            }
            code_of(status)
        }
        _ = parent_died.recv() => {
            let _ = rustix::process::kill_current_process_group(Signal::TERM);
            let grace = Duration::from_millis(args.grace_ms);
            let _ = tokio::time::timeout(grace, child.wait()).await;
            let _ = rustix::process::kill_current_process_group(Signal::KILL);
            EXIT_LOST
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_cannot_run_gets_the_shells_exit_codes() {
        assert_eq!(check_runnable("sh"), Ok(()));
        assert_eq!(check_runnable("/bin/sh"), Ok(()));
        assert_eq!(
            check_runnable("/nonexistent/cmd").unwrap_err().0,
            EXIT_NOT_FOUND
        );
        assert_eq!(
            check_runnable("no-such-command-anywhere").unwrap_err().0,
            EXIT_NOT_FOUND
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("not-executable");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let (code, why) = check_runnable(script.to_str().unwrap()).unwrap_err();
        assert_eq!(code, EXIT_NOT_EXECUTABLE, "{why}");
    }
}
