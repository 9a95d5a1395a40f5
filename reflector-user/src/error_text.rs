//! How every error reaches a person: one line, each cause once. Every edge (the command
//! line, the subcommands, the reload log, the control socket's replies) renders errors here.
//!
//! The rule that makes this work, as in aya: an error type shows its own words in `Display`
//! and hands its cause over as `source()`, never both; the renderer walks the chain.

use std::{error::Error, fmt::Write as _};

/// `error` and its causes on one line, `outer: inner: innermost`, with the name of the OS
/// error number when a cause carries one: `cannot listen on [::]:10022 (tcp): Address
/// already in use (os error 98) [EADDRINUSE]`. A cause whose text the line already holds
/// (a foreign type that breaks the rule) is left out rather than printed twice.
#[must_use]
pub fn render(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut errno = None;
    let mut current: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            errno = errno.or(io.raw_os_error());
        }
        current = cause.source();
        if let Some(next) = current {
            let next = next.to_string();
            if !text.contains(&next) {
                let _ = write!(text, ": {next}");
            }
        }
    }
    if let Some(errno) = errno {
        let _ = write!(text, " [{:?}]", nix::errno::Errno::from_raw(errno));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::render;

    #[derive(Debug, thiserror::Error)]
    #[error("loading failed")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("map `M`")]
    struct Middle(#[source] io::Error);

    #[test]
    fn every_cause_once_and_the_errno_by_name() {
        let error = Outer(Middle(io::Error::from_raw_os_error(libc::EPERM)));
        assert_eq!(
            render(&error),
            "loading failed: map `M`: Operation not permitted (os error 1) [EPERM]"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("reading x: {0}")]
    struct RuleBreaker(#[source] io::Error);

    #[test]
    fn a_cause_already_shown_is_not_repeated() {
        let error = RuleBreaker(io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            render(&error),
            "reading x: No such file or directory (os error 2) [ENOENT]"
        );
    }
}
