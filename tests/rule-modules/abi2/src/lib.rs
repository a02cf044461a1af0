//! A rule module built against a future, incompatible rule ABI (`ldap2ftrack:rules@2.0.0`,
//! otherwise the same WIT): the host must refuse it at load time with an error naming both
//! versions, not fail on the first entry.

wit_bindgen::generate!({ path: "wit", world: "rule" });

use exports::ldap2ftrack::rules::hooks::Guest;
use ldap2ftrack::rules::types::*;

struct Abi2;

impl Guest for Abi2 {
    fn metadata() -> ModuleMetadata {
        ModuleMetadata {
            name: "abi2".into(),
            version: "0.1.0".into(),
            description: "built for ABI 2".into(),
            abi_version: "2.0.0".into(),
            hooks: vec![Hook::TransformUser],
            config_schema: vec![],
        }
    }
    fn configure(_config_json: String) -> Result<EntryFields, String> {
        Ok(EntryFields {
            attributes: None,
            groups: true,
        })
    }
    fn transform_user(_entry: LdapEntry, proposal: UserDecision) -> Result<UserDecision, String> {
        Ok(proposal)
    }
    fn map_groups(_e: LdapEntry, _u: UserFields, proposal: Access) -> Result<Access, String> {
        Ok(proposal)
    }
    fn deprovision(_u: DepartedUser, proposal: Verdict) -> Result<Verdict, String> {
        Ok(proposal)
    }
}

export!(Abi2);
