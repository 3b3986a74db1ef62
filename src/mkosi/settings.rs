//! The one table of mkosi settings: every setting mkosi's `config.py` knows, with its section,
//! value kind, scope, specifier, default paths, `[Match]` support, and whether elsx implements it.
//!
//! Scopes are mkosi's `SettingScope` as declared in `config.py` (the man page's lists of
//! "universal" and "passed down" settings lag behind it in places; the code wins). The table
//! drives parsing, inheritance into subimages, the summary, `--json` and the help text.
//!
//! What elsx does with a setting it does not implement ([`Support`]): if the setting cannot change
//! what elsx writes (runtime, caching, VM settings, boot settings of non-bootable images), a
//! warning naming file and line; if it would change the output, an error naming file and line
//! for every image that is built, unless its value is one listed as harmless (mkosi's default).

use std::collections::HashMap;
use std::sync::LazyLock;

/// mkosi's `SettingScope`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Not passed down; can be configured in every image.
    Local,
    /// Passed down from the top level to every subimage; only the top level may set it.
    Universal,
    /// Like universal, and also passed to the tools tree; only the top level may set it.
    Multiversal,
    /// Passed down to subimages, which may override it.
    Inherit,
    /// Only the top level may set it; not passed down.
    Main,
    /// Settings of the default tools tree (top level only).
    Tools,
    /// Settings of the default initrd (top level only).
    Initrd,
    /// Like inherit, but only for the default initrd.
    InitrdInherit,
}

impl Scope {
    /// mkosi's `is_main_setting()`: setting it outside the top-level config is an error.
    pub fn main_only(self) -> bool {
        matches!(
            self,
            Scope::Main | Scope::Tools | Scope::Initrd | Scope::Multiversal
        )
    }

    /// Setting it in a subimage is an error.
    pub fn prohibited_in_subimage(self) -> bool {
        self.main_only() || self == Scope::Universal
    }

    /// The top level's final value is imposed on every subimage.
    pub fn shared(self) -> bool {
        matches!(self, Scope::Universal | Scope::Multiversal)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Universal => "universal",
            Scope::Multiversal => "multiversal",
            Scope::Inherit => "inherit",
            Scope::Main => "main",
            Scope::Tools => "tools",
            Scope::Initrd => "initrd",
            Scope::InitrdInherit => "initrd-inherit",
        }
    }
}

/// How list items are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Commas and any whitespace (mkosi's default list parser).
    CommaSpace,
    /// Spaces and newlines only.
    Space,
    /// Spaces and newlines, with shell quoting (`"a b"` is one item).
    Shell,
}

/// What one list item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Word,
    /// A file name without `/` (profiles).
    Filename,
    /// One of these names.
    Enum(&'static [&'static str]),
    /// A path resolved against the current directory; `globs`: expanded, sorted, and dropped
    /// when nothing matches (script settings).
    Path {
        required: bool,
        globs: bool,
    },
    /// `SOURCE[:TARGET]`, TARGET absolute.
    Tree {
        required: bool,
    },
    /// `Include=`: a path, or one of mkosi's built-in configs (`mkosi-initrd`, …).
    Include,
}

/// The kind of value a setting takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    String,
    /// A non-negative integer.
    Number,
    /// A file name: no `/`, not `.` or `..` (`Output=`).
    Filename,
    /// `1 yes true y t on always` / `0 no false n f off never`; stored as `yes` / `no`.
    Bool,
    /// mkosi's ConfigFeature: `auto`, `enabled`, `disabled`, or a boolean.
    Feature,
    /// One of these names.
    Enum(&'static [&'static str]),
    /// One of the names, or a boolean mapped to `yes` / `no`.
    EnumOrBool {
        values: &'static [&'static str],
        yes: &'static str,
        no: &'static str,
    },
    /// A compression name, or a boolean (yes = zstd, no = none).
    Compression,
    /// A path resolved against the current directory; `constants` are kept as written.
    Path {
        required: bool,
        constants: &'static [&'static str],
    },
    /// Items appended by each assignment; an empty assignment empties the list when `reset`.
    /// `sort`: mkosi keeps package lists sorted (names, then paths, then rich dependencies).
    List {
        split: Split,
        item: Item,
        reset: bool,
        sort: bool,
    },
    /// `KEY=VALUE` items (spaces, newlines and shell quoting); later keys win; with
    /// `pass_through`, a bare `KEY` takes the value from the environment mkosi runs in.
    Map { pass_through: bool },
    /// `SplitArtifacts=`: a list of artifact names, or a boolean (mkosi's compatibility values).
    Artifacts,
    /// Kept as the text of the last assignment (settings elsx does not interpret).
    Raw,
}

/// The default when nothing sets a value (for lists and maps: empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    /// None (or empty).
    None,
    /// This value, in the canonical form of the kind.
    Value(&'static str),
    /// Computed by the loader (host distribution, architecture, default output name, …).
    Computed,
}

/// Whether elsx implements a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    Yes,
    /// Not implemented, and cannot change what elsx writes: a warning.
    Ignored,
    /// Not implemented, and would change the output: an error for every built image whose
    /// value is not one of `harmless` (canonical forms; for lists every item must be harmless).
    No {
        harmless: &'static [&'static str],
    },
}

/// How a `[Match]` condition on the setting compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// Exact string equality.
    Equal,
    /// fnmatch-style glob.
    Glob,
    /// The condition must name a valid value; then equality.
    Enum,
    /// UAPI version comparison with optional `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Version,
    /// The list contains the item; an empty condition matches an empty list.
    List,
    /// A feature value (`auto`, `enabled`, `disabled` or a boolean).
    Feature,
    /// An architecture, or `uefi` for any architecture with UEFI.
    Architecture,
    /// `KEY=VALUE` present, or `KEY` present with any value.
    KeyValue,
    /// A build source target path.
    BuildSources,
}

/// One setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    pub name: &'static str,
    pub section: &'static str,
    pub kind: Kind,
    pub scope: Scope,
    pub support: Support,
    pub default: DefaultValue,
    /// `%c` expands to the setting's current value.
    pub specifier: Option<char>,
    /// `mkosi.<suffix>` files or directories used as values when present in a config directory.
    pub default_paths: &'static [&'static str],
    /// `mkosi.<suffix>.d/*` entries appended when present (script directories).
    pub default_dirs: &'static [&'static str],
    /// The default path's content, not its name, is the value (`mkosi.version`).
    pub read_text: bool,
    pub matcher: Option<Matcher>,
    /// Old names mkosi still accepts, with a warning.
    pub compat: &'static [&'static str],
    /// One line for `--help` and the summary; empty for settings elsx does not implement.
    pub doc: &'static str,
}

impl Setting {
    pub fn is_list(&self) -> bool {
        matches!(self.kind, Kind::List { .. } | Kind::Artifacts)
    }

    pub fn is_map(&self) -> bool {
        matches!(self.kind, Kind::Map { .. })
    }
}

const fn s(
    name: &'static str,
    section: &'static str,
    kind: Kind,
    scope: Scope,
    support: Support,
) -> Setting {
    Setting {
        name,
        section,
        kind,
        scope,
        support,
        default: DefaultValue::None,
        specifier: None,
        default_paths: &[],
        default_dirs: &[],
        read_text: false,
        matcher: None,
        compat: &[],
        doc: "",
    }
}

impl Setting {
    const fn fallback(mut self, d: &'static str) -> Setting {
        self.default = DefaultValue::Value(d);
        self
    }
    const fn computed(mut self) -> Setting {
        self.default = DefaultValue::Computed;
        self
    }
    const fn spec(mut self, c: char) -> Setting {
        self.specifier = Some(c);
        self
    }
    const fn paths(mut self, p: &'static [&'static str]) -> Setting {
        self.default_paths = p;
        self
    }
    const fn dirs(mut self, p: &'static [&'static str]) -> Setting {
        self.default_dirs = p;
        self
    }
    const fn text(mut self) -> Setting {
        self.read_text = true;
        self
    }
    const fn matcher(mut self, m: Matcher) -> Setting {
        self.matcher = Some(m);
        self
    }
    const fn compat(mut self, c: &'static [&'static str]) -> Setting {
        self.compat = c;
        self
    }
    const fn doc(mut self, d: &'static str) -> Setting {
        self.doc = d;
        self
    }
}

pub const DISTRIBUTIONS: &[&str] = &[
    "fedora",
    "debian",
    "kali",
    "ubuntu",
    "postmarketos",
    "arch",
    "opensuse",
    "mageia",
    "centos",
    "rhel",
    "rhel-ubi",
    "openmandriva",
    "rocky",
    "alma",
    "azure",
    "custom",
];

/// mkosi's architecture names (systemd's, e.g. `x86-64`, `arm64`).
pub const ARCHITECTURES: &[&str] = &[
    "alpha",
    "arc",
    "arm",
    "arm64",
    "ia64",
    "loongarch64",
    "mips-le",
    "mips64-le",
    "parisc",
    "ppc",
    "ppc64",
    "ppc64-le",
    "riscv32",
    "riscv64",
    "s390",
    "s390x",
    "tilegx",
    "x86",
    "x86-64",
];

pub const FORMATS: &[&str] = &[
    "confext",
    "cpio",
    "directory",
    "disk",
    "esp",
    "none",
    "portable",
    "sysext",
    "tar",
    "uki",
    "oci",
    "addon",
];

pub const VERITY: &[&str] = &["disabled", "hash", "signed", "defer", "auto"];
pub const FEATURE: &[&str] = &["auto", "enabled", "disabled"];
pub const COMPRESSIONS: &[&str] = &["none", "zstd", "xz", "bz2", "gz", "lz4", "lzma"];
pub const ARTIFACTS: &[&str] = &[
    "uki",
    "kernel",
    "initrd",
    "partitions",
    "tar",
    "pcrs",
    "roothash",
    "os-release",
    "kernel-modules-initrd",
    "repart-definitions",
];
const MANIFEST_FORMATS: &[&str] = &["json", "changelog"];
const SSH: &[&str] = &["always", "auto", "runtime", "never"];

use Scope::{Inherit, Initrd, InitrdInherit, Local, Main, Multiversal, Tools, Universal};
use Support::{Ignored, Yes};

const STRING: Kind = Kind::String;
const BOOL: Kind = Kind::Bool;
const FEAT: Kind = Kind::Feature;
const RAW: Kind = Kind::Raw;
const PATH_OPT: Kind = Kind::Path {
    required: false,
    constants: &[],
};
const WORDS: Kind = Kind::List {
    split: Split::CommaSpace,
    item: Item::Word,
    reset: true,
    sort: false,
};
const SPACED: Kind = Kind::List {
    split: Split::Space,
    item: Item::Word,
    reset: true,
    sort: false,
};
const PACKAGES: Kind = Kind::List {
    split: Split::CommaSpace,
    item: Item::Word,
    reset: true,
    sort: true,
};
const PATHS: Kind = Kind::List {
    split: Split::CommaSpace,
    item: Item::Path {
        required: true,
        globs: false,
    },
    reset: true,
    sort: false,
};
const PATHS_OPT: Kind = Kind::List {
    split: Split::CommaSpace,
    item: Item::Path {
        required: false,
        globs: false,
    },
    reset: true,
    sort: false,
};
const SCRIPTS: Kind = Kind::List {
    split: Split::CommaSpace,
    item: Item::Path {
        required: true,
        globs: true,
    },
    reset: true,
    sort: false,
};
const TREES: Kind = Kind::List {
    split: Split::CommaSpace,
    item: Item::Tree { required: false },
    reset: true,
    sort: false,
};
const TREES_REQ: Kind = Kind::List {
    split: Split::CommaSpace,
    item: Item::Tree { required: true },
    reset: true,
    sort: false,
};
const fn no(harmless: &'static [&'static str]) -> Support {
    Support::No { harmless }
}
const NO: Support = Support::No { harmless: &[] };

/// Every setting mkosi knows, in mkosi's order.
pub static SETTINGS: &[Setting] = &[
    // [Include]
    s(
        "Include",
        "Include",
        Kind::List {
            split: Split::CommaSpace,
            item: Item::Include,
            reset: false,
            sort: false,
        },
        Local,
        Yes,
    )
    .doc("Parse these config files or directories right here (each once)"),
    // [Config]
    s(
        "Profiles",
        "Config",
        Kind::List {
            split: Split::CommaSpace,
            item: Item::Filename,
            reset: true,
            sort: false,
        },
        Inherit,
        Yes,
    )
    .matcher(Matcher::List)
    .compat(&["Profile"])
    .doc("Profiles from mkosi.profiles/ to parse after mkosi.conf.d/"),
    s("Dependencies", "Config", WORDS, Local, Yes)
        .doc("Images to build before this one (top level: which subimages to build)"),
    s("MinimumVersion", "Config", STRING, Main, Ignored),
    s("ConfigureScripts", "Config", SCRIPTS, Local, NO).paths(&["configure"]),
    s("PassEnvironment", "Config", SPACED, Main, Yes)
        .doc("Environment= variables passed down to subimages"),
    // [Distribution]
    s(
        "Distribution",
        "Distribution",
        Kind::Enum(DISTRIBUTIONS),
        Universal,
        Yes,
    )
    .computed()
    .spec('d')
    .matcher(Matcher::Enum)
    .doc("Distribution to install (default: the host's)"),
    s("Release", "Distribution", STRING, Universal, Yes)
        .computed()
        .spec('r')
        .matcher(Matcher::Equal)
        .doc("Release of the distribution"),
    s(
        "Architecture",
        "Distribution",
        Kind::Enum(ARCHITECTURES),
        Universal,
        Yes,
    )
    .computed()
    .spec('a')
    .matcher(Matcher::Architecture)
    .doc("Architecture to build for, in systemd's names (x86-64, arm64)"),
    s("Mirror", "Distribution", STRING, Universal, Yes).doc("Mirror to download packages from"),
    s("Snapshot", "Distribution", STRING, Universal, Yes)
        .paths(&["snapshot"])
        .text()
        .doc("Repository snapshot to use instead of the latest packages"),
    s("LocalMirror", "Distribution", STRING, Universal, Yes)
        .doc("A single plain repository used for the build instead of the mirror"),
    s("RepositoryKeyCheck", "Distribution", BOOL, Multiversal, Yes)
        .fallback("yes")
        .doc("Verify repository signatures"),
    s(
        "RepositoryKeyFetch",
        "Distribution",
        BOOL,
        Universal,
        Ignored,
    ),
    s("Repositories", "Distribution", WORDS, Universal, Yes)
        .matcher(Matcher::List)
        .doc("Repositories to enable that are disabled by default"),
    // [Output]
    s("Format", "Output", Kind::Enum(FORMATS), Local, Yes)
        .fallback("disk")
        .spec('t')
        .matcher(Matcher::Enum)
        .doc("Output format (elsx builds sysext and directory; none builds nothing)"),
    s(
        "ManifestFormat",
        "Output",
        Kind::List {
            split: Split::CommaSpace,
            item: Item::Enum(MANIFEST_FORMATS),
            reset: true,
            sort: false,
        },
        Local,
        NO,
    ),
    s("Output", "Output", Kind::Filename, Local, Yes)
        .computed()
        .spec('o')
        .doc("Output name (default: image name or ImageId, then _ImageVersion)"),
    s("OutputExtension", "Output", Kind::Filename, Local, Yes)
        .computed()
        .doc("Output file extension (default: by format, raw for sysext)"),
    s("OutputSize", "Output", RAW, Local, Ignored),
    s(
        "CompressOutput",
        "Output",
        Kind::Compression,
        Local,
        no(&["none"]),
    )
    .computed(),
    s("CompressLevel", "Output", RAW, Inherit, Ignored),
    s("OutputDirectory", "Output", PATH_OPT, Universal, Yes)
        .spec('O')
        .paths(&["output"])
        .doc("Where outputs go (default: mkosi.output/ if it exists, else the config directory)"),
    s("OutputMode", "Output", RAW, Universal, NO),
    s("ImageVersion", "Output", STRING, Inherit, Yes)
        .spec('v')
        .paths(&["version"])
        .text()
        .matcher(Matcher::Version)
        .doc("Image version (SYSEXT_VERSION_ID, $IMAGE_VERSION)"),
    s("ImageId", "Output", STRING, Inherit, Yes)
        .spec('i')
        .matcher(Matcher::Glob)
        .doc("Image identifier (SYSEXT_ID, $IMAGE_ID)"),
    s(
        "OciLabels",
        "Output",
        Kind::Map {
            pass_through: false,
        },
        Local,
        Ignored,
    ),
    s(
        "OciAnnotations",
        "Output",
        Kind::Map {
            pass_through: false,
        },
        Local,
        Ignored,
    ),
    s(
        "SplitArtifacts",
        "Output",
        Kind::Artifacts,
        Local,
        no(&["uki", "kernel", "initrd", "pcrs", "kernel-modules-initrd"]),
    )
    .fallback("uki kernel initrd"),
    s("RepartDirectories", "Output", PATHS, Local, Ignored).paths(&["repart"]),
    s("SectorSize", "Output", RAW, Inherit, NO),
    s("Overlay", "Output", BOOL, Local, Yes)
        .fallback("no")
        .doc("Keep only what differs from BaseTrees= (a sysext on top of a base)"),
    s("Seed", "Output", RAW, Local, Ignored)
        .paths(&["seed"])
        .text(),
    s("ElTorito", "Output", FEAT, Local, Ignored),
    s("ElToritoSystem", "Output", STRING, Local, Ignored),
    s("ElToritoVolume", "Output", STRING, Local, Ignored),
    s("ElToritoPublisher", "Output", STRING, Local, Ignored),
    s("CleanScripts", "Output", SCRIPTS, Local, Ignored)
        .paths(&["clean"])
        .dirs(&["clean.d"]),
    // [Content]
    s("Packages", "Content", PACKAGES, Local, Yes).doc("Packages to install"),
    s("BuildPackages", "Content", PACKAGES, Local, Ignored),
    s("VolatilePackages", "Content", PACKAGES, Local, NO),
    s("PackageDirectories", "Content", PATHS, Universal, NO).paths(&["packages"]),
    s(
        "VolatilePackageDirectories",
        "Content",
        PATHS,
        Universal,
        NO,
    ),
    s("WithRecommends", "Content", BOOL, Local, Yes)
        .fallback("no")
        .doc("Install weak dependencies (Recommends)"),
    s("WithDocs", "Content", BOOL, Local, no(&["yes"])).fallback("yes"),
    s("BaseTrees", "Content", PATHS_OPT, Local, Yes)
        .doc("Trees the image starts from (with Overlay=yes: subtracted)"),
    s("SkeletonTrees", "Content", TREES_REQ, Local, Yes)
        .paths(&["skeleton", "skeleton.tar"])
        .doc("Trees copied in before packages are installed"),
    s("ExtraTrees", "Content", TREES, Local, Yes)
        .paths(&["extra", "extra.tar"])
        .doc("Trees copied in after packages are installed"),
    s("RemovePackages", "Content", WORDS, Local, NO),
    s("RemoveFiles", "Content", WORDS, Local, NO),
    s("CleanPackageMetadata", "Content", FEAT, Local, Yes)
        .fallback("auto")
        .doc("Remove package manager databases and metadata"),
    s("SourceDateEpoch", "Content", Kind::Number, Multiversal, Yes)
        .computed()
        .doc("Timestamp that file times are clamped to"),
    s("SyncScripts", "Content", SCRIPTS, Local, NO)
        .paths(&["sync"])
        .dirs(&["sync.d"]),
    s("PrepareScripts", "Content", SCRIPTS, Local, NO)
        .paths(&["prepare", "prepare.chroot"])
        .dirs(&["prepare.d"])
        .compat(&["PrepareScript"]),
    s("BuildScripts", "Content", SCRIPTS, Local, NO)
        .paths(&["build", "build.chroot"])
        .dirs(&["build.d"])
        .compat(&["BuildScript"]),
    s("PostInstallationScripts", "Content", SCRIPTS, Local, Yes)
        .paths(&["postinst", "postinst.chroot"])
        .dirs(&["postinst.d"])
        .compat(&["PostInstallationScript"])
        .doc("Scripts run after packages and extra trees are installed"),
    s("FinalizeScripts", "Content", SCRIPTS, Local, Yes)
        .paths(&["finalize", "finalize.chroot"])
        .dirs(&["finalize.d"])
        .compat(&["FinalizeScript"])
        .doc("Scripts run last, before the image is packed"),
    s("PostOutputScripts", "Content", SCRIPTS, Local, Yes)
        .paths(&["postoutput"])
        .dirs(&["postoutput.d"])
        .doc("Scripts run after the output is written"),
    s(
        "Bootable",
        "Content",
        FEAT,
        Local,
        no(&["auto", "disabled"]),
    )
    .fallback("auto")
    .matcher(Matcher::Feature),
    s("Bootloader", "Content", RAW, Local, Ignored),
    s("BiosBootloader", "Content", RAW, Local, Ignored),
    s("ShimBootloader", "Content", RAW, Local, Ignored),
    s("UnifiedKernelImages", "Content", RAW, Local, Ignored),
    s("UnifiedKernelImageFormat", "Content", RAW, Local, Ignored),
    s(
        "UnifiedKernelImageProfiles",
        "Content",
        WORDS,
        Local,
        Ignored,
    ),
    s("Initrds", "Content", WORDS, Local, Ignored),
    s("MicrocodeHost", "Content", BOOL, Local, Ignored),
    s("InitrdProfiles", "Content", WORDS, Initrd, Ignored),
    s("InitrdPackages", "Content", WORDS, Initrd, Ignored),
    s("InitrdVolatilePackages", "Content", WORDS, Initrd, Ignored),
    s("Devicetrees", "Content", WORDS, Local, Ignored).compat(&["Devicetree"]),
    s("Splash", "Content", RAW, Local, Ignored),
    s("KernelCommandLine", "Content", SPACED, Local, Ignored),
    s("KernelModulesInclude", "Content", WORDS, Local, NO),
    s("KernelModulesExclude", "Content", WORDS, Local, NO),
    s("KernelModules", "Content", WORDS, Local, NO),
    s(
        "KernelModulesIncludeHost",
        "Content",
        BOOL,
        Local,
        no(&["no"]),
    ),
    s("KernelModulesInitrd", "Content", BOOL, Local, Ignored),
    s(
        "KernelModulesInitrdInclude",
        "Content",
        WORDS,
        Local,
        Ignored,
    ),
    s(
        "KernelModulesInitrdExclude",
        "Content",
        WORDS,
        Local,
        Ignored,
    ),
    s("KernelInitrdModules", "Content", WORDS, Local, Ignored),
    s(
        "KernelModulesInitrdIncludeHost",
        "Content",
        BOOL,
        Local,
        Ignored,
    ),
    s("FirmwareInclude", "Content", WORDS, Local, NO),
    s("FirmwareExclude", "Content", WORDS, Local, NO),
    s("FirmwareFiles", "Content", WORDS, Local, NO),
    s("Locale", "Content", STRING, Local, NO),
    s("LocaleMessages", "Content", STRING, Local, NO),
    s("Keymap", "Content", STRING, InitrdInherit, NO),
    s("Timezone", "Content", STRING, InitrdInherit, NO),
    s("Hostname", "Content", STRING, InitrdInherit, NO),
    s("RootPassword", "Content", STRING, InitrdInherit, NO)
        .paths(&["rootpw"])
        .text(),
    s("RootShell", "Content", STRING, Local, NO),
    s("MachineId", "Content", STRING, Local, NO)
        .paths(&["machine-id"])
        .text(),
    s("Autologin", "Content", BOOL, Local, no(&["no"])),
    s("MakeInitrd", "Content", BOOL, Local, no(&["no"])),
    s(
        "Ssh",
        "Content",
        Kind::EnumOrBool {
            values: SSH,
            yes: "always",
            no: "never",
        },
        Local,
        no(&["never", "runtime"]),
    ),
    s(
        "SELinuxRelabel",
        "Content",
        FEAT,
        Local,
        no(&["auto", "disabled"]),
    )
    .fallback("auto"),
    // [Validation]
    s("SecureBoot", "Validation", BOOL, Local, no(&["no"])).fallback("no"),
    s("SecureBootAutoEnroll", "Validation", BOOL, Local, Ignored),
    s("SecureBootKey", "Validation", PATH_OPT, Universal, Ignored).paths(&["key"]),
    s("SecureBootKeySource", "Validation", RAW, Universal, Ignored),
    s(
        "SecureBootCertificate",
        "Validation",
        PATH_OPT,
        Universal,
        Ignored,
    )
    .paths(&["crt"]),
    s(
        "SecureBootCertificateSource",
        "Validation",
        RAW,
        Universal,
        Ignored,
    ),
    s("SecureBootSignTool", "Validation", RAW, Local, Ignored),
    s(
        "Verity",
        "Validation",
        Kind::EnumOrBool {
            values: VERITY,
            yes: "signed",
            no: "disabled",
        },
        Local,
        Yes,
    )
    .fallback("auto")
    .doc("dm-verity for extension images: disabled, hash, signed, defer, auto"),
    s("VerityKey", "Validation", PATH_OPT, Universal, Yes)
        .paths(&["key"])
        .doc("Key that signs the verity root hash"),
    s(
        "VerityKeySource",
        "Validation",
        RAW,
        Universal,
        no(&["file"]),
    ),
    s("VerityCertificate", "Validation", PATH_OPT, Universal, Yes)
        .paths(&["crt"])
        .doc("Certificate of the verity signing key"),
    s(
        "VerityCertificateSource",
        "Validation",
        RAW,
        Universal,
        no(&["file"]),
    ),
    s("SignExpectedPcr", "Validation", FEAT, Local, Ignored),
    s(
        "SignExpectedPcrKey",
        "Validation",
        PATH_OPT,
        Inherit,
        Ignored,
    )
    .paths(&["key"]),
    s(
        "SignExpectedPcrKeySource",
        "Validation",
        RAW,
        Inherit,
        Ignored,
    ),
    s(
        "SignExpectedPcrCertificate",
        "Validation",
        PATH_OPT,
        Inherit,
        Ignored,
    )
    .paths(&["crt"]),
    s(
        "SignExpectedPcrCertificateSource",
        "Validation",
        RAW,
        Inherit,
        Ignored,
    ),
    s("Passphrase", "Validation", PATH_OPT, Local, Ignored).paths(&["passphrase"]),
    s("Checksum", "Validation", BOOL, Local, no(&["no"])),
    s("Sign", "Validation", BOOL, Local, no(&["no"])),
    s("Key", "Validation", STRING, Local, Ignored),
    s("OpenPGPTool", "Validation", STRING, Local, Ignored),
    // [Build]
    s(
        "ToolsTree",
        "Build",
        Kind::Path {
            required: true,
            constants: &["default", "yes", "no"],
        },
        Universal,
        Ignored,
    )
    .paths(&["tools"]),
    s("ToolsTreeDistribution", "Build", STRING, Tools, Ignored).matcher(Matcher::Equal),
    s("ToolsTreeRelease", "Build", STRING, Tools, Ignored).matcher(Matcher::Equal),
    s("ToolsTreeProfiles", "Build", WORDS, Tools, Ignored),
    s("ToolsTreeMirror", "Build", STRING, Tools, Ignored),
    s("ToolsTreeRepositories", "Build", WORDS, Tools, Ignored),
    s("ToolsTreeSandboxTrees", "Build", WORDS, Tools, Ignored)
        .compat(&["ToolsTreePackageManagerTrees"]),
    s("ToolsTreePackages", "Build", WORDS, Tools, Ignored),
    s(
        "ToolsTreePackageDirectories",
        "Build",
        WORDS,
        Tools,
        Ignored,
    ),
    s("ToolsTreeCertificates", "Build", BOOL, Universal, Ignored),
    s("ExtraSearchPaths", "Build", WORDS, Universal, Ignored),
    s("Incremental", "Build", RAW, Universal, Ignored),
    s("CacheOnly", "Build", RAW, Inherit, Ignored),
    s("SandboxTrees", "Build", TREES_REQ, Universal, NO)
        .paths(&["sandbox", "sandbox.tar", "pkgmngr", "pkgmngr.tar"])
        .compat(&["PackageManagerTrees"]),
    s(
        "WorkspaceDirectory",
        "Build",
        PATH_OPT,
        Multiversal,
        Ignored,
    ),
    s("CacheDirectory", "Build", PATH_OPT, Universal, Ignored).paths(&["cache"]),
    s("CacheKey", "Build", STRING, Inherit, Ignored),
    s(
        "PackageCacheDirectory",
        "Build",
        PATH_OPT,
        Multiversal,
        Ignored,
    )
    .paths(&["pkgcache"]),
    s("BuildDirectory", "Build", PATH_OPT, Universal, Ignored).paths(&["builddir"]),
    s("BuildKey", "Build", STRING, Inherit, Ignored),
    s("UseSubvolumes", "Build", FEAT, Universal, Ignored),
    s("RepartOffline", "Build", BOOL, Universal, Ignored),
    s("History", "Build", BOOL, Main, Ignored),
    s("BuildSources", "Build", WORDS, Multiversal, Ignored).matcher(Matcher::BuildSources),
    s("BuildSourcesEphemeral", "Build", RAW, Multiversal, Ignored),
    s(
        "Environment",
        "Build",
        Kind::Map { pass_through: true },
        Local,
        Yes,
    )
    .matcher(Matcher::KeyValue)
    .doc("Variables for scripts (and SYSEXT_SCOPE, SYSTEMD_REPART_OVERRIDE_FSTYPE_ROOT)"),
    s("EnvironmentFiles", "Build", PATHS, Local, Yes)
        .paths(&["env"])
        .doc("Files of KEY=VALUE lines read before Environment="),
    s("WithTests", "Build", BOOL, Universal, Ignored),
    s("WithNetwork", "Build", BOOL, Universal, Ignored),
    s("ProxyUrl", "Build", STRING, Multiversal, Ignored),
    s("ProxyExclude", "Build", WORDS, Multiversal, Ignored),
    s(
        "ProxyPeerCertificate",
        "Build",
        PATH_OPT,
        Multiversal,
        Ignored,
    ),
    s(
        "ProxyClientCertificate",
        "Build",
        PATH_OPT,
        Multiversal,
        Ignored,
    ),
    s("ProxyClientKey", "Build", PATH_OPT, Multiversal, Ignored),
    s("MakeScriptsExecutable", "Build", BOOL, Multiversal, Ignored),
    s("ForeignUIDRange", "Build", BOOL, Main, no(&["no"])),
    // [Runtime]: how mkosi boots or runs images; never part of the output.
    s("NSpawnSettings", "Runtime", PATH_OPT, Main, Ignored).paths(&["nspawn"]),
    s("Ephemeral", "Runtime", BOOL, Main, Ignored),
    s("Credentials", "Runtime", RAW, Main, Ignored).paths(&["credentials"]),
    s("KernelCommandLineExtra", "Runtime", SPACED, Main, Ignored),
    s("RuntimeTrees", "Runtime", WORDS, Main, Ignored),
    s("RuntimeSize", "Runtime", RAW, Main, Ignored),
    s("RuntimeNetwork", "Runtime", RAW, Main, Ignored),
    s("RuntimeBuildSources", "Runtime", BOOL, Main, Ignored),
    s("BindUser", "Runtime", BOOL, Main, Ignored),
    s("SshKey", "Runtime", PATH_OPT, Main, Ignored).paths(&["key"]),
    s("SshCertificate", "Runtime", PATH_OPT, Main, Ignored).paths(&["crt"]),
    s("VirtualMachineMonitor", "Runtime", RAW, Main, Ignored),
    s("Machine", "Runtime", STRING, Main, Ignored),
    s("ForwardJournal", "Runtime", PATH_OPT, Main, Ignored),
    s("SysupdateDirectory", "Runtime", PATH_OPT, Main, Ignored).paths(&["sysupdate"]),
    s("Console", "Runtime", RAW, Main, Ignored),
    s("CPUs", "Runtime", RAW, Main, Ignored).compat(&["QemuSmp"]),
    s("RAM", "Runtime", RAW, Main, Ignored).compat(&["QemuMem"]),
    s("MaxMem", "Runtime", RAW, Main, Ignored),
    s("KVM", "Runtime", FEAT, Main, Ignored).compat(&["QemuKvm"]),
    s("CXL", "Runtime", BOOL, Main, Ignored),
    s("VSock", "Runtime", FEAT, Main, Ignored).compat(&["QemuVsock"]),
    s("VSockCID", "Runtime", RAW, Main, Ignored).compat(&["QemuVsockConnectionId"]),
    s("TPM", "Runtime", FEAT, Main, Ignored).compat(&["QemuSwtpm"]),
    s("Removable", "Runtime", BOOL, Main, Ignored).compat(&["QemuRemovable"]),
    s("DiskType", "Runtime", RAW, Main, Ignored),
    s("Firmware", "Runtime", RAW, Main, Ignored).compat(&["QemuFirmware"]),
    s("FirmwareVariables", "Runtime", RAW, Main, Ignored).compat(&["QemuFirmwareVariables"]),
    s("Linux", "Runtime", STRING, Main, Ignored).compat(&["QemuKernel"]),
    s("Drives", "Runtime", SPACED, Main, Ignored).compat(&["QemuDrives"]),
    s(
        "QemuArgs",
        "Runtime",
        Kind::List {
            split: Split::Shell,
            item: Item::Word,
            reset: true,
            sort: false,
        },
        Main,
        Ignored,
    ),
    s("Register", "Runtime", FEAT, Main, Ignored),
    s("StorageTargetMode", "Runtime", FEAT, Main, Ignored),
];

/// Sections that hold settings (`[Host]` is the old name of `[Runtime]`).
pub fn is_settings_section(name: &str) -> bool {
    name == "Host" || SETTINGS.iter().any(|s| s.section == name)
}

/// Sections that hold conditions.
pub const CONDITION_SECTIONS: &[&str] = &["Match", "TriggerMatch", "Assert", "TriggerAssert"];

static BY_NAME: LazyLock<HashMap<&'static str, usize>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for (i, s) in SETTINGS.iter().enumerate() {
        m.insert(s.name, i);
        for c in s.compat {
            m.insert(*c, i);
        }
    }
    m
});

/// The setting called `name` (or formerly called so).
pub fn lookup(name: &str) -> Option<&'static Setting> {
    BY_NAME.get(name).map(|&i| &SETTINGS[i])
}

/// The setting `%c` expands to.
pub fn by_specifier(c: char) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.specifier == Some(c))
}

/// The setting called exactly `name`; panics on a typo (internal use with literal names).
pub fn get(name: &str) -> &'static Setting {
    match BY_NAME.get(name) {
        Some(&i) if SETTINGS[i].name == name => &SETTINGS[i],
        _ => panic!("no mkosi setting named {name}"),
    }
}

/// The help text: one line per implemented setting, grouped by section.
pub fn help() -> String {
    let mut out = String::new();
    let mut section = "";
    for s in SETTINGS.iter().filter(|s| s.support == Support::Yes) {
        if s.section != section {
            section = s.section;
            out.push_str(&format!("[{section}]\n"));
        }
        out.push_str(&format!(
            "  {:<26} {:<11} {}\n",
            format!("{}=", s.name),
            s.scope.name(),
            s.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.name), "duplicate {}", s.name);
            for c in s.compat {
                assert!(seen.insert(c), "duplicate {c}");
            }
            assert_eq!(s.support == Support::Yes, !s.doc.is_empty(), "{}", s.name);
        }
        assert!(SETTINGS.len() > 180);
    }

    #[test]
    fn scopes_as_in_mkosi_config_py() {
        let cases = [
            ("Distribution", Universal),
            ("Release", Universal),
            ("Architecture", Universal),
            ("Mirror", Universal),
            ("LocalMirror", Universal),
            ("Repositories", Universal),
            ("RepositoryKeyCheck", Multiversal),
            ("OutputDirectory", Universal),
            ("CacheDirectory", Universal),
            ("ToolsTree", Universal),
            ("WithNetwork", Universal),
            ("ImageVersion", Inherit),
            ("ImageId", Inherit),
            ("Profiles", Inherit),
            ("Environment", Local),
            ("Packages", Local),
            ("Format", Local),
            ("Output", Local),
            ("BaseTrees", Local),
            ("SELinuxRelabel", Local),
            ("Verity", Local),
            ("Dependencies", Local),
            ("MinimumVersion", Main),
            ("PassEnvironment", Main),
            ("SourceDateEpoch", Multiversal),
        ];
        for (name, scope) in cases {
            assert_eq!(get(name).scope, scope, "{name}");
        }
    }

    #[test]
    fn specifiers() {
        let got: String = SETTINGS.iter().filter_map(|s| s.specifier).collect();
        assert_eq!(got, "dratoOvi");
        assert_eq!(by_specifier('O').unwrap().name, "OutputDirectory");
    }

    #[test]
    fn compat_names() {
        assert_eq!(lookup("FinalizeScript").unwrap().name, "FinalizeScripts");
        assert_eq!(lookup("Profile").unwrap().name, "Profiles");
        assert!(lookup("NoSuchSetting").is_none());
    }

    #[test]
    fn help_lists_implemented_settings() {
        let h = help();
        assert!(h.contains("[Output]"));
        assert!(h.contains("Overlay="));
        assert!(!h.contains("Bootloader="));
    }
}
