//! The verifier's statistics for one program of the kernel object, read from the
//! verifier's own log (`BPF_LOG_STATS`: `processed N insns ...`), on any kernel.
//!
//! aya 0.14 hands the kernel a log buffer only when it retries a load that failed, so a
//! successful load has no log; and `bpf_prog_info.verified_insns` exists only from 5.16. So
//! the object is loaded with aya as the daemon loads it (its maps created and filled, the
//! read-only data frozen), and each program is loaded a second time here with a log: the
//! same instructions aya relocates (`aya-obj`, against aya's own map descriptors), the same
//! program type, no BTF. On kernels that report `verified_insns`, the test compares the two
//! counts, so a difference between this load and aya's would show.

use std::{
    collections::{HashMap, HashSet},
    ffi::CString,
    io,
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
};

use aya::{
    Ebpf,
    maps::{Map, MapData},
};
use aya_obj::{
    Object,
    generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type},
};

/// `BPF_LOG_STATS`: only the summary lines, not every instruction.
const LOG_STATS: u32 = 4;
/// Room for the summary lines (a few hundred bytes).
const LOG_SIZE: usize = 64 * 1024;

/// The hook a program is loaded for (its `bpf_prog_type`).
#[derive(Clone, Copy, Debug)]
pub enum ProgramType {
    /// `BPF_PROG_TYPE_XDP`.
    Xdp,
    /// `BPF_PROG_TYPE_SCHED_CLS`.
    SchedCls,
}

/// What the verifier said about one program.
#[derive(Debug)]
pub struct Stats {
    /// `processed N insns`.
    pub processed: u32,
    /// The whole summary, as the kernel wrote it.
    pub log: String,
}

/// The descriptor of one of `ebpf`'s maps (the kinds reflector's object has).
fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(data)
        | Map::HashMap(data)
        | Map::LruHashMap(data)
        | Map::PerCpuArray(data)
        | Map::PerCpuHashMap(data)
        | Map::PerCpuLruHashMap(data)
        | Map::PerfEventArray(data)
        | Map::RingBuf(data)
        | Map::ProgramArray(data)
        | Map::LpmTrie(data)
        | Map::Unsupported(data) => Some(data),
        _ => None,
    }
}

/// Loads `program` of `object` once more, with the verifier's statistics, against the maps
/// `ebpf` (the same object, loaded by aya) created; the program is unloaded again at once.
///
/// # Errors
/// When the object cannot be parsed or relocated, a map has no descriptor, or the kernel
/// refuses the program (the error then carries the log).
pub fn verify(
    ebpf: &Ebpf,
    object: &[u8],
    program: &str,
    kind: ProgramType,
) -> Result<Stats, String> {
    let mut obj = Object::parse(object).map_err(|e| format!("parsing the object: {e}"))?;
    let fds: HashMap<&str, i32> = ebpf
        .maps()
        .filter_map(|(name, map)| Some((name, map_data(map)?.fd().as_fd().as_raw_fd())))
        .collect();
    let maps = obj.maps.clone();
    let mut relocations = Vec::new();
    for (name, map) in &maps {
        let fd = *fds
            .get(name.as_str())
            .ok_or_else(|| format!("aya created no map {name}, or one of an unknown kind"))?;
        relocations.push((name.as_str(), fd, map));
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(section, _)| *section).collect();
    obj.relocate_maps(relocations.into_iter(), &text_sections)
        .map_err(|e| format!("relocating the maps: {e}"))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| format!("relocating the calls: {e}"))?;
    obj.sanitize_functions(aya::features());
    let prog = obj
        .programs
        .get(program)
        .ok_or_else(|| format!("the object has no program {program}"))?;
    let function = obj
        .functions
        .get(&prog.function_key())
        .ok_or_else(|| format!("the object has no code for {program}"))?;
    let license = CString::new(prog.license.as_bytes()).map_err(|e| e.to_string())?;

    let mut log = vec![0_u8; LOG_SIZE];
    // SAFETY: an all-zero bpf_attr is valid (every field is an integer or an array of them).
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: only the BPF_PROG_LOAD member of the union is written and passed.
    let load = unsafe { &mut attr.__bindgen_anon_3 };
    (load.prog_type, load.expected_attach_type) = match kind {
        ProgramType::Xdp => (
            bpf_prog_type::BPF_PROG_TYPE_XDP as u32,
            bpf_attach_type::BPF_XDP as u32,
        ),
        ProgramType::SchedCls => (bpf_prog_type::BPF_PROG_TYPE_SCHED_CLS as u32, 0),
    };
    load.insns = function.instructions.as_ptr() as u64;
    load.insn_cnt = u32::try_from(function.instructions.len()).map_err(|e| e.to_string())?;
    load.license = license.as_ptr() as u64;
    load.log_level = LOG_STATS;
    load.log_buf = log.as_mut_ptr() as u64;
    load.log_size = LOG_SIZE as u32;
    // SAFETY: attr is a complete BPF_PROG_LOAD request whose pointers (instructions,
    // license, log) outlive the call; the kernel writes at most log_size bytes to the log.
    let fd = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_bpf,
            bpf_cmd::BPF_PROG_LOAD as nix::libc::c_int,
            &raw mut attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    let error = io::Error::last_os_error();
    let end = log.iter().position(|&byte| byte == 0).unwrap_or(log.len());
    let log = String::from_utf8_lossy(&log[..end]).into_owned();
    if fd < 0 {
        return Err(format!("the kernel refused {program}: {error}\n{log}"));
    }
    // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that nothing else owns;
    // dropping it unloads the program.
    drop(unsafe { OwnedFd::from_raw_fd(i32::try_from(fd).map_err(|e| e.to_string())?) });
    let processed = log
        .lines()
        .find_map(|line| {
            line.strip_prefix("processed ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| {
            format!("no `processed N insns` in the verifier's log of {program}:\n{log}")
        })?;
    Ok(Stats { processed, log })
}
