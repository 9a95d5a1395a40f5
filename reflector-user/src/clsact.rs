//! The clsact qdisc that TC mode attaches through on kernels without TCX (before 6.6).
//! The daemon adds it only where an interface has none, and removes it on detach only when
//! it added it: a clsact that was there before may carry other programs.

use std::{io, mem::size_of};

use aya::util::KernelVersion;
use nix::errno::Errno;

/// Whether TC programs attach as TCX links (kernel >= 6.6), needing no qdisc; the same test
/// aya makes when it chooses between TCX and netlink.
#[must_use]
pub(crate) fn tcx_supported() -> bool {
    KernelVersion::current().is_ok_and(|version| version >= KernelVersion::new(6, 6, 0))
}

/// `TC_H_CLSACT`, the clsact qdisc's parent (and the major of its handle).
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// The clsact qdisc's handle, `ffff:`.
const CLSACT_HANDLE: u32 = 0xffff_0000;
/// `TCA_KIND`, the attribute that names the qdisc.
const TCA_KIND: u16 = 1;

/// `struct tcmsg` (linux/rtnetlink.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct TcMsg {
    family: u8,
    pad1: u8,
    pad2: u16,
    ifindex: i32,
    handle: u32,
    parent: u32,
    info: u32,
}

/// A qdisc request: the header, the tcmsg, and the `TCA_KIND` "clsact" attribute.
#[repr(C)]
#[derive(Clone, Copy)]
struct Request {
    header: libc::nlmsghdr,
    tc: TcMsg,
    kind_len: u16,
    kind_type: u16,
    kind: [u8; 8],
}

/// Adds a clsact qdisc to interface `index`. Returns `false`, changing nothing, when the
/// interface has one already.
///
/// # Errors
/// The kernel's refusal (no such interface, no permission, ...).
pub(crate) fn add(index: u32) -> io::Result<bool> {
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_EXCL | libc::NLM_F_CREATE;
    match request(libc::RTM_NEWQDISC, flags, index) {
        Ok(()) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes the clsact qdisc of interface `index`, and with it any filter attached there.
/// An interface gone already (or its qdisc) is not an error.
///
/// # Errors
/// The kernel's refusal.
pub(crate) fn remove(index: u32) -> io::Result<()> {
    match request(
        libc::RTM_DELQDISC,
        libc::NLM_F_REQUEST | libc::NLM_F_ACK,
        index,
    ) {
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::ENODEV | libc::ENOENT | libc::EINVAL)
            ) =>
        {
            Ok(())
        }
        result => result,
    }
}

/// Sends one clsact request over a new rtnetlink socket and reads the kernel's answer.
#[expect(
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation,
    reason = "netlink's constants and this 48-byte request fit the kernel's narrower fields"
)]
fn request(kind: u16, flags: i32, index: u32) -> io::Result<()> {
    let ifindex =
        i32::try_from(index).map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
    let len = size_of::<Request>();
    let request = Request {
        header: libc::nlmsghdr {
            nlmsg_len: len as u32,
            nlmsg_type: kind,
            // The flags all fit in 16 bits (NLM_F_* < 0x1000).
            nlmsg_flags: flags as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        tc: TcMsg {
            family: libc::AF_UNSPEC as u8,
            pad1: 0,
            pad2: 0,
            ifindex,
            handle: CLSACT_HANDLE,
            parent: TC_H_CLSACT,
            info: 0,
        },
        // 4 bytes of header and "clsact\0", padded to 8.
        kind_len: 4 + 7,
        kind_type: TCA_KIND,
        kind: *b"clsact\0\0",
    };
    // SAFETY: a plain socket(2) call; the fd it returns is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&socket);
    // SAFETY: `request` is a `repr(C)` value of `len` bytes, with no padding (every field
    // is naturally aligned and the sizes add up to `len`), so all its bytes are initialised.
    let sent = unsafe { libc::send(raw, (&raw const request).cast(), len, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    // The answer is one NLMSG_ERROR: its header, then the error code (0: acknowledged).
    let mut answer = [0_u8; 1024];
    // SAFETY: `answer` is writable for its whole length.
    let received = unsafe { libc::recv(raw, answer.as_mut_ptr().cast(), answer.len(), 0) };
    // A negative count is recv(2)'s -1: the cause is in errno.
    let received = usize::try_from(received).map_err(|_negative| io::Error::last_os_error())?;
    let header_len = size_of::<libc::nlmsghdr>();
    if received < header_len + 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink answer",
        ));
    }
    let kind = u16::from_ne_bytes([answer[4], answer[5]]);
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected netlink answer of type {kind}"),
        ));
    }
    let code = i32::from_ne_bytes([
        answer[header_len],
        answer[header_len + 1],
        answer[header_len + 2],
        answer[header_len + 3],
    ]);
    if code == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(-code).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_no_padding() {
        assert_eq!(size_of::<Request>(), 16 + 20 + 4 + 8);
    }
}
