//! The signals a waiting or running koncli acts on: SIGINT and SIGTERM end a wait
//! (withdrawing the claim, exit 130 or 143, as a shell reports them), and are forwarded
//! to a running command along with SIGHUP and SIGQUIT.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT, caught from the moment this is made.
pub struct Interrupts {
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    hangup: Option<Signal>,
    quit: Option<Signal>,
    /// The exit code for the signal that ended a wait.
    caught: Option<u8>,
}

impl Default for Interrupts {
    fn default() -> Self {
        Self::new()
    }
}

async fn next_of(signal: &mut Option<Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

impl Interrupts {
    /// Starts catching them (a signal that cannot be caught is simply not watched).
    pub fn new() -> Self {
        Self {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
            quit: signal(SignalKind::quit()).ok(),
            caught: None,
        }
    }

    /// Resolves at the first SIGINT or SIGTERM.
    pub async fn first(&mut self) {
        tokio::select! {
            () = next_of(&mut self.interrupt) => self.caught = Some(128 + 2),
            () = next_of(&mut self.terminate) => self.caught = Some(128 + 15),
        }
    }

    /// The exit code a shell reports for the signal [`Interrupts::first`] caught.
    pub fn exit_code(&self) -> u8 {
        self.caught.unwrap_or(1)
    }

    /// Says (the last line on stderr) that a queued claim was withdrawn because of the
    /// signal, and returns the exit code for it.
    pub fn withdrawn(&self) -> u8 {
        eprintln!(
            "{}: interrupted; claim withdrawn",
            crate::exit::program_name()
        );
        self.exit_code()
    }

    /// The next signal to forward to a command.
    pub async fn next(&mut self) -> rustix::process::Signal {
        use rustix::process::Signal as Sig;
        tokio::select! {
            () = next_of(&mut self.interrupt) => Sig::INT,
            () = next_of(&mut self.terminate) => Sig::TERM,
            () = next_of(&mut self.hangup) => Sig::HUP,
            () = next_of(&mut self.quit) => Sig::QUIT,
        }
    }
}
