//! File capabilities: rpm's `%caps` text (libcap's `cap_from_text` syntax) to the
//! `security.capability` xattr value (`vfs_cap_data`, revision 2).

const NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_FLAGS_EFFECTIVE: u32 = 1;

/// Encodes e.g. `cap_net_raw=ep` or `cap_chown,cap_fowner+ep`; `None` if the text is not valid.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let (mut permitted, mut inheritable, mut effective) = (0u64, 0u64, false);
    for clause in text.split_whitespace() {
        let pos = clause.find(['=', '+', '-'])?;
        let (names, ops) = clause.split_at(pos);
        let mut bits = 0u64;
        for n in names.split(',').filter(|n| !n.is_empty()) {
            let n = n.to_ascii_lowercase();
            if n == "all" {
                bits |= (1u64 << NAMES.len()) - 1;
            } else {
                bits |= 1u64 << NAMES.iter().position(|&k| k == n)?;
            }
        }
        let mut chars = ops.chars().peekable();
        while let Some(op) = chars.next() {
            let mut flags = String::new();
            while let Some(&c) = chars.peek().filter(|c| c.is_ascii_alphabetic()) {
                flags.push(c);
                chars.next();
            }
            let add = op != '-';
            if op == '=' {
                permitted &= !bits;
                inheritable &= !bits;
            }
            for f in flags.chars() {
                let set = |v: &mut u64| if add { *v |= bits } else { *v &= !bits };
                match f {
                    'p' => set(&mut permitted),
                    'i' => set(&mut inheritable),
                    'e' => effective = add && bits != 0,
                    _ => return None,
                }
            }
        }
    }
    let mut out = Vec::with_capacity(20);
    let magic = VFS_CAP_REVISION_2
        | if effective {
            VFS_CAP_FLAGS_EFFECTIVE
        } else {
            0
        };
    for v in [
        magic,
        permitted as u32,
        inheritable as u32,
        (permitted >> 32) as u32,
        (inheritable >> 32) as u32,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_like_setcap() {
        // `setcap cap_net_raw=ep FILE; getfattr -n security.capability -e hex FILE`
        assert_eq!(
            hex::encode(super::encode("cap_net_raw=ep").unwrap()),
            "0100000200200000000000000000000000000000"
        );
        assert!(super::encode("cap_bogus=ep").is_none());
    }
}
