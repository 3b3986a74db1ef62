//! elsx: systemd system extension images from openSUSE rpm-md repositories.
//!
//! The modules follow the pipeline (see ARCHITECTURE.md): [`recipe`] → [`repo`] →
//! [`resolve`] → [`fetch`] → [`unpack`] → [`diff`] → [`sysext`] → [`write`], driven by
//! [`pipeline`] and presented by [`cli`].

pub mod cache;
pub mod checksum;
pub mod cli;
pub mod compress;
pub mod diff;
pub mod distro;
pub mod fetch;
pub mod inspect;
pub mod mkosi;
pub mod package;
pub mod pipeline;
pub mod recipe;
pub mod repo;
pub mod report;
pub mod resolve;
pub mod scripts;
pub mod sysext;
pub mod tree;
pub mod unpack;
pub mod write;
