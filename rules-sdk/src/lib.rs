//! # ldap2ftrack rules SDK
//!
//! Write ldap2ftrack rule modules — sandboxed WebAssembly components that decide what ftrack
//! should look like for each directory user — as plain Rust. This crate exists so a rule
//! author never sees the component ABI: the bindings are generated from the WIT that ships
//! inside this crate (`wit/rules.wit`, the single source of truth shared with the host), and
//! one macro, [`export_rules!`], turns an `impl Rules for …` block into a module.
//!
//! ## The three hooks
//!
//! Every stage of the pipeline sees the entry and the previous stage's proposal and returns a
//! new proposal. A module implements only the hooks it needs; the others pass the proposal
//! through, and the host does not even call them.
//!
//! * [`Rules::transform_user`]: LDAP entry → ftrack user fields, or `skip(reason)`.
//! * [`Rules::map_groups`]: LDAP entry + user fields → ftrack groups and security roles.
//! * [`Rules::deprovision`]: a user LDAP no longer has (or has disabled) → keep or disable.
//!
//! Returning `Err(message)` rejects the entry: the host reports it with the module, hook and
//! entry, and the run's `on_error` policy decides whether the run stops or skips the entry.
//!
//! ## A complete example
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "lowercase-users"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! ldap2ftrack-rules-sdk = { path = "../../rules-sdk" }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use ldap2ftrack_rules::prelude::*;
//!
//! pub struct LowercaseUsers {
//!     domain: String,
//! }
//!
//! ldap2ftrack_rules::export_rules! {
//!     impl Rules for LowercaseUsers {
//!         fn metadata() -> Metadata {
//!             Metadata::new("lowercase-users", "0.1.0", "Lower-case usernames; mail from uid")
//!                 .key(ConfigKey::string("domain").default_value("\"example.com\"")
//!                     .describe("Mail domain for users without a mail attribute"))
//!         }
//!
//!         fn configure(config: &Config) -> Result<Self, String> {
//!             Ok(LowercaseUsers { domain: config.string("domain")?.unwrap_or_default() })
//!         }
//!
//!         // Optional, and worth it: the host then passes only these attributes (no
//!         // groups), which makes every call cheaper.
//!         fn reads(&self) -> EntryFields {
//!             EntryFields::only(["uid"])
//!         }
//!
//!         fn transform_user(&self, entry: &Entry, proposal: UserDecision)
//!             -> Result<UserDecision, String>
//!         {
//!             let UserDecision::Sync(mut user) = proposal else { return Ok(proposal) };
//!             user.username = names::normalize_username(&user.username);
//!             if user.email.is_none() {
//!                 user.email = Some(format!("{}@{}", user.username, self.domain));
//!             }
//!             log::debug(&format!("{} -> {}", entry.dn, user.username));
//!             Ok(UserDecision::Sync(user))
//!         }
//!     }
//! }
//!
//! // Rules are plain Rust: unit-test them natively with `cargo test`.
//! let rules: LowercaseUsers = testing::configure(r#"{}"#).unwrap();
//! let entry = testing::entry("uid=JDoe,ou=people,dc=example,dc=com")
//!     .attr("uid", ["JDoe"])
//!     .attr("telephoneNumber", ["555"])
//!     .build();
//! // What the host would hand the module: only what `reads` declares.
//! let entry = testing::as_passed(&rules, &entry);
//! assert_eq!(entry.attributes.len(), 1);
//! let proposal = UserDecision::Sync(UserFields { username: "JDoe".into(), ..UserFields::default() });
//! let UserDecision::Sync(user) = rules.transform_user(&entry, proposal).unwrap() else { panic!() };
//! assert_eq!(user.username, "jdoe");
//! assert_eq!(user.email.as_deref(), Some("jdoe@example.com"));
//! assert_eq!(testing::hooks_of::<LowercaseUsers>(), vec![Hook::TransformUser]);
//! ```
//!
//! Build the module with `cargo build --release --target wasm32-wasip2`; the result
//! (`target/wasm32-wasip2/release/lowercase_users.wasm`) is a component. Then
//! `ldap2ftrack rules inspect lowercase_users.wasm` shows its metadata and sha256, and
//! `sync.toml` pins it:
//!
//! ```toml
//! [[rules]]
//! module = "rules/lowercase_users.wasm"
//! sha256 = "…"
//! [rules.config]
//! domain = "studio.example"
//! ```
//!
//! ## Cost
//!
//! A hook call costs a few microseconds, most of it handing the entry's strings to the
//! module; declare [`Rules::reads`] so only what the rule uses crosses. Modules allocate
//! through a small size-class allocator (feature `fast-alloc`, on by default; disable it
//! with `default-features = false` to use your own `#[global_allocator]`).
//!
//! ## Sandbox
//!
//! A module gets no files, environment, network or standard streams; clocks read a fixed
//! time and randomness is a fixed sequence, so rules are deterministic. Each call has an
//! instruction (fuel) budget, memory is capped, and output size is capped. Today's date for
//! grace periods comes from the host in [`DepartedUser::today`].

#![warn(missing_docs)]

extern crate self as ldap2ftrack_rules;

mod config;
pub mod dn;
pub mod email;
#[doc(hidden)]
pub mod fast_alloc;
pub mod log;
pub mod names;
pub mod testing;
mod types;

pub use config::Config;
pub use types::*;

/// Rule modules allocate through [`fast_alloc`] (feature `fast-alloc`, default): most of a
/// hook's allocations are the small strings of the entry it is handed.
#[cfg(all(target_arch = "wasm32", feature = "fast-alloc"))]
#[global_allocator]
static ALLOCATOR: fast_alloc::FastAlloc = fast_alloc::FastAlloc::new();

/// Re-exported so that modules can name the exact wit-bindgen the SDK was built with.
pub use wit_bindgen;

/// Re-exported for modules that want to deserialise their configuration into their own types.
pub use serde_json;

/// The rule ABI version this SDK builds modules for (the WIT package version).
pub const ABI_VERSION: &str = "1.0.0";

/// The WIT package, for tools and other-language guests.
pub const WIT: &str = include_str!("../wit/rules.wit");

/// Bindings generated from `wit/rules.wit`. Not part of the stable API: use the re-exports.
#[doc(hidden)]
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "rule",
        pub_export_macro: true,
        export_macro_name: "__export_rule_world",
        default_bindings_module: "::ldap2ftrack_rules::bindings",
        runtime_path: "::ldap2ftrack_rules::wit_bindgen::rt",
        additional_derives: [Clone, PartialEq, Eq, Hash, PartialOrd, Ord],
        additional_type_attributes: {
            "ldap2ftrack:rules/types@1.0.0/user-fields": [#[derive(Default)]],
            "ldap2ftrack:rules/types@1.0.0/access": [#[derive(Default)]],
        },
        generate_unused_types: true,
    });
}

/// Everything a rule module usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        dn, email, log, names, testing, Access, Attribute, Config, ConfigKey, ConfigType,
        DepartedUser, Entry, EntryFields, GroupRef, Hook, Metadata, RoleGrant, RoleScope, Rules,
        UserDecision, UserFields, Verdict,
    };
}

/// A rule module. Implement it inside [`export_rules!`]; override only the hooks you need.
///
/// The defaults pass the proposal through unchanged, and the host never calls a hook the
/// module did not write (the macro lists the written ones in the metadata).
pub trait Rules: Sized + 'static {
    /// Name, version, description and configuration keys. The hooks and ABI version are
    /// filled in by [`export_rules!`].
    fn metadata() -> Metadata;

    /// Build the module's state from its `[rules.config]` table (defaults already applied,
    /// types already checked against [`Rules::metadata`]'s keys). `Err` refuses the
    /// configuration: the host stops with a configuration error (exit 2).
    fn configure(config: &Config) -> Result<Self, String>;

    /// What the hooks read of each entry under this configuration. The host passes only
    /// that, so declaring it makes every call cheaper (directory entries can carry dozens of
    /// attributes and hundreds of groups). The default is everything.
    fn reads(&self) -> EntryFields {
        EntryFields::all()
    }

    /// LDAP entry + the previous stage's proposal → ftrack user fields, or skip.
    fn transform_user(
        &self,
        entry: &Entry,
        proposal: UserDecision,
    ) -> Result<UserDecision, String> {
        let _ = entry;
        Ok(proposal)
    }

    /// LDAP entry + the user's fields + the previous stage's proposal → groups and roles.
    fn map_groups(
        &self,
        entry: &Entry,
        user: &UserFields,
        proposal: Access,
    ) -> Result<Access, String> {
        let _ = (entry, user);
        Ok(proposal)
    }

    /// A user LDAP no longer has, or has disabled → keep or disable, with a reason.
    fn deprovision(&self, user: &DepartedUser, proposal: Verdict) -> Result<Verdict, String> {
        let _ = user;
        Ok(proposal)
    }
}

/// Export a [`Rules`] implementation as the module's hooks.
///
/// Wrap the `impl Rules for YourType { … }` block in this macro. It compiles the block as
/// written (so it stays testable natively) and, when building for WebAssembly, exports it
/// with the hooks you wrote listed in the metadata. See the crate documentation for a
/// complete example.
#[macro_export]
macro_rules! export_rules {
    (impl Rules for $ty:ident { $($body:tt)* }) => {
        impl $crate::Rules for $ty { $($body)* }

        impl $crate::__rt::Implemented for $ty {
            const METHODS: &'static [&'static str] = $crate::__fn_names!([] $($body)*);
        }

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __Ldap2ftrackRules;

            ::std::thread_local! {
                static __STATE: ::std::cell::RefCell<::std::option::Option<$ty>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            fn __with<R>(
                f: impl FnOnce(&$ty) -> ::std::result::Result<R, ::std::string::String>,
            ) -> ::std::result::Result<R, ::std::string::String> {
                __STATE.with(|s| match &*s.borrow() {
                    ::std::option::Option::Some(state) => f(state),
                    ::std::option::Option::None => ::std::result::Result::Err(
                        ::std::string::String::from("the module was called before `configure`"),
                    ),
                })
            }

            impl $crate::bindings::exports::ldap2ftrack::rules::hooks::Guest for __Ldap2ftrackRules {
                fn metadata() -> $crate::Metadata {
                    $crate::__rt::metadata::<$ty>()
                }

                fn configure(
                    config_json: ::std::string::String,
                ) -> ::std::result::Result<$crate::EntryFields, ::std::string::String> {
                    let state = $crate::__rt::configure::<$ty>(&config_json)?;
                    let reads = $crate::Rules::reads(&state);
                    __STATE.with(|s| *s.borrow_mut() = ::std::option::Option::Some(state));
                    ::std::result::Result::Ok(reads)
                }

                fn transform_user(
                    entry: $crate::Entry,
                    proposal: $crate::UserDecision,
                ) -> ::std::result::Result<$crate::UserDecision, ::std::string::String> {
                    __with(|s| $crate::Rules::transform_user(s, &entry, proposal))
                }

                fn map_groups(
                    entry: $crate::Entry,
                    user: $crate::UserFields,
                    proposal: $crate::Access,
                ) -> ::std::result::Result<$crate::Access, ::std::string::String> {
                    __with(|s| $crate::Rules::map_groups(s, &entry, &user, proposal))
                }

                fn deprovision(
                    user: $crate::DepartedUser,
                    proposal: $crate::Verdict,
                ) -> ::std::result::Result<$crate::Verdict, ::std::string::String> {
                    __with(|s| $crate::Rules::deprovision(s, &user, proposal))
                }
            }

            $crate::bindings::__export_rule_world!(
                __Ldap2ftrackRules with_types_in $crate::bindings
            );
        };
    };
}

/// Collects the names of the `fn`s written in an impl block (a tt-muncher).
#[doc(hidden)]
#[macro_export]
macro_rules! __fn_names {
    ([$($acc:expr),*]) => { &[$($acc),*] };
    ([$($acc:expr),*] fn $name:ident $($rest:tt)*) => {
        $crate::__fn_names!([$($acc,)* ::core::stringify!($name)] $($rest)*)
    };
    ([$($acc:expr),*] $other:tt $($rest:tt)*) => {
        $crate::__fn_names!([$($acc),*] $($rest)*)
    };
}

/// Support code for [`export_rules!`]. Not part of the stable API.
#[doc(hidden)]
pub mod __rt {
    use crate::{Config, Hook, Metadata, Rules};

    /// The `fn`s an `impl Rules` block wrote; the hooks among them are the implemented ones.
    pub trait Implemented {
        const METHODS: &'static [&'static str];
    }

    /// The hooks a rule type implements, in ABI order.
    pub fn hooks<T: Implemented>() -> Vec<Hook> {
        [
            ("transform_user", Hook::TransformUser),
            ("map_groups", Hook::MapGroups),
            ("deprovision", Hook::Deprovision),
        ]
        .into_iter()
        .filter(|(name, _)| T::METHODS.contains(name))
        .map(|(_, hook)| hook)
        .collect()
    }

    /// The metadata the module reports: the author's, plus hooks and ABI version.
    pub fn metadata<T: Rules + Implemented>() -> Metadata {
        install_panic_hook();
        let mut meta = T::metadata();
        meta.hooks = hooks::<T>();
        meta.abi_version = crate::ABI_VERSION.to_string();
        meta
    }

    /// Parse the host's JSON, apply the schema's defaults, and build the state.
    pub fn configure<T: Rules>(config_json: &str) -> Result<T, String> {
        install_panic_hook();
        let config = Config::parse(config_json, &T::metadata().config_schema)?;
        T::configure(&config)
    }

    /// A panic becomes a trap on the host; send its message to the host log first, so the
    /// error the admin sees says what went wrong.
    fn install_panic_hook() {
        #[cfg(target_arch = "wasm32")]
        {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                std::panic::set_hook(Box::new(|info| {
                    crate::log::error(&format!("panic: {info}"));
                }));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_version_matches_the_wit_package() {
        let line = WIT
            .lines()
            .find(|l| l.starts_with("package "))
            .expect("package line");
        assert_eq!(line, format!("package ldap2ftrack:rules@{ABI_VERSION};"));
    }

    struct OnlyDeprovision;

    export_rules! {
        impl Rules for OnlyDeprovision {
            fn metadata() -> Metadata {
                Metadata::new("only-deprovision", "0.0.1", "test")
            }

            /// A doc comment and attributes do not confuse the macro.
            #[inline]
            fn configure(_config: &Config) -> Result<Self, String> {
                Ok(OnlyDeprovision)
            }

            fn deprovision(&self, _user: &DepartedUser, _p: Verdict) -> Result<Verdict, String> {
                Ok(Verdict::Keep("always".into()))
            }
        }
    }

    #[test]
    fn the_macro_lists_only_written_hooks() {
        assert_eq!(
            testing::hooks_of::<OnlyDeprovision>(),
            vec![Hook::Deprovision]
        );
        let meta = __rt::metadata::<OnlyDeprovision>();
        assert_eq!(meta.abi_version, ABI_VERSION);
        assert_eq!(meta.hooks, vec![Hook::Deprovision]);
    }

    #[test]
    fn unwritten_hooks_pass_the_proposal_through() {
        let rules: OnlyDeprovision = testing::configure("{}").unwrap();
        let entry = testing::entry("uid=a,dc=x").build();
        let p = UserDecision::Skip("no".into());
        assert_eq!(rules.transform_user(&entry, p.clone()).unwrap(), p);
        let access = Access::default().with_group("artists");
        let user = UserFields::default();
        assert_eq!(
            rules.map_groups(&entry, &user, access.clone()).unwrap(),
            access
        );
    }
}
