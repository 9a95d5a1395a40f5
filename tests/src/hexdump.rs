//! Frames as text for failure messages: a hex dump, and where two frames differ.

use std::fmt::Write as _;

/// Where two frames differ, and both in hex.
#[must_use]
pub fn byte_diff(expected: &[u8], actual: &[u8]) -> String {
    let mut out = String::new();
    if expected.len() != actual.len() {
        let _ = write!(
            out,
            "length {} instead of {}; ",
            actual.len(),
            expected.len()
        );
    }
    let differing: Vec<String> = expected
        .iter()
        .zip(actual)
        .enumerate()
        .filter(|(_, (e, a))| e != a)
        .map(|(offset, (e, a))| format!("@{offset}: {a:#04x} (expected {e:#04x})"))
        .collect();
    let shown = differing.len().min(24);
    let _ = write!(
        out,
        "{} differing bytes: {}{}",
        differing.len(),
        differing[..shown].join(", "),
        if differing.len() > shown { ", ..." } else { "" }
    );
    let _ = write!(
        out,
        "\n      expected:\n{}\n      actual:\n{}",
        hex(expected),
        hex(actual)
    );
    out
}

/// `bytes` as hex, 16 bytes a line, with offsets.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(line, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            format!("      {:04x}  {}", line * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
