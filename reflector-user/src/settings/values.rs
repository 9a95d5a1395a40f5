//! Parsers for setting values written as text, shared by the command line and the config
//! file so both accept and refuse the same things with the same words.

use std::{net::SocketAddr, time::Duration};

/// A duration such as `3s`, `500ms` or `5m`, more than zero.
///
/// # Errors
/// A message naming the problem and an example, for clap or the config file's error.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero, e.g. 3s".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error}; write e.g. 3s, 500ms or 5m")),
    }
}

/// A metrics address: an IP address and a port, e.g. `127.0.0.1:9477` or `[::]:9477`.
///
/// # Errors
/// A message naming the problem and an example, for clap or the config file's error.
pub fn metrics_address(text: &str) -> Result<SocketAddr, String> {
    // std's words ("invalid socket address syntax") add nothing to the example.
    text.parse().map_err(|_std_words| {
        format!("invalid metrics address '{text}': write IP:PORT, e.g. 127.0.0.1:9477 or [::]:9477")
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{metrics_address, positive_duration};

    #[test]
    fn metrics_addresses() {
        assert_eq!(
            metrics_address("127.0.0.1:9477"),
            Ok("127.0.0.1:9477".parse().unwrap())
        );
        assert_eq!(
            metrics_address("[::]:9477"),
            Ok("[::]:9477".parse().unwrap())
        );
        let error = metrics_address("localhost").unwrap_err();
        assert!(
            error.contains("'localhost'") && error.contains("e.g. 127.0.0.1:9477"),
            "{error}"
        );
        assert!(metrics_address("127.0.0.1").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(positive_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(positive_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(
            positive_duration("0s")
                .unwrap_err()
                .contains("more than zero")
        );
        assert!(positive_duration("banana").unwrap_err().contains("e.g. 3s"));
    }
}
