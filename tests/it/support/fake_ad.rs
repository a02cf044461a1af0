//! A small in-process LDAP server that answers like Active Directory, for what slapd cannot
//! show: `member;range=0-1499` slices of large groups (AD's MaxValRange is 1500) that need
//! follow-up base searches for `member;range=1500-*`, binary objectGUIDs, and faults (a dropped
//! range, a short slice, a continuation reference, a missing paging control, a connection
//! that dies mid-search) that the reader must turn into errors.
//!
//! Built on `ldap3_proto`'s server-side codec over tokio; it understands simple bind, paged
//! subtree searches of [`USERS_BASE`] / [`GROUPS_BASE`], base searches of a group, and unbind.

use futures_util::{SinkExt, StreamExt};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindResponse, LdapMsg, LdapOp, LdapPartialAttribute, LdapResult, LdapResultCode,
    LdapSearchResultEntry, LdapSearchResultReference, LdapSearchScope,
};
use ldap3_proto::LdapCodec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

pub const USERS_BASE: &str = "OU=Users,DC=ad,DC=test";
pub const GROUPS_BASE: &str = "OU=Groups,DC=ad,DC=test";
pub const BIND_DN: &str = "CN=svc-sync,OU=Service,DC=ad,DC=test";
pub const BIND_PASSWORD: &str = "Ad-Pa55word";
/// Values per slice, as AD's default MaxValRange.
pub const MAX_VAL_RANGE: usize = 1500;

/// What the server gets wrong, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// A follow-up range search returns the group without any `member;range=` attribute.
    DropRange,
    /// The first follow-up slice claims `1500-2999` but holds 1000 values.
    ShortRange,
    /// The user search returns a continuation reference to another domain.
    Referral,
    /// The user search's last page comes back without the paged-results control.
    NoPagingControl,
    /// The connection closes after a few user entries.
    DropConnection,
    /// The root DSE offers syncrepl, and a sync search answers with an entry whose sync
    /// state control is malformed (its entryUUID is missing).
    MalformedSyncControl,
}

/// OIDs of the sync request and sync state controls (RFC 4533).
const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";

/// One directory object: DN and attributes (values as bytes).
#[derive(Debug, Clone)]
pub struct AdObject {
    pub dn: String,
    pub attributes: Vec<(String, Vec<Vec<u8>>)>,
}

impl AdObject {
    pub fn new(dn: impl Into<String>) -> AdObject {
        AdObject {
            dn: dn.into(),
            attributes: Vec::new(),
        }
    }

    pub fn with(mut self, name: &str, values: Vec<Vec<u8>>) -> AdObject {
        self.attributes.push((name.to_string(), values));
        self
    }

    pub fn text(self, name: &str, value: &str) -> AdObject {
        self.with(name, vec![value.as_bytes().to_vec()])
    }
}

/// A running fake AD; stops when dropped.
pub struct FakeAd {
    pub url: String,
    /// Base-scope range follow-up searches answered.
    pub range_searches: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    users: Vec<AdObject>,
    groups: Vec<AdObject>,
    fault: Fault,
    range_searches: Arc<AtomicU64>,
}

impl FakeAd {
    pub async fn start(users: Vec<AdObject>, groups: Vec<AdObject>, fault: Fault) -> FakeAd {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake AD");
        let url = format!(
            "ldap://127.0.0.1:{}",
            listener.local_addr().expect("addr").port()
        );
        let range_searches = Arc::new(AtomicU64::new(0));
        let state = Arc::new(State {
            users,
            groups,
            fault,
            range_searches: range_searches.clone(),
        });
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move { serve(socket, &state).await });
            }
        });
        FakeAd {
            url,
            range_searches,
            task,
        }
    }
}

fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.to_string(),
        referral: vec![],
    }
}

fn entry(msgid: i32, dn: &str, attributes: Vec<LdapPartialAttribute>) -> LdapMsg {
    LdapMsg {
        msgid,
        op: LdapOp::SearchResultEntry(LdapSearchResultEntry {
            dn: dn.to_string(),
            attributes,
        }),
        ctrl: vec![],
    }
}

/// The group's attributes as AD sends them in a subtree search: `member` cut to the first
/// slice as `member;range=0-1499` when it has more values than [`MAX_VAL_RANGE`].
fn group_attributes(group: &AdObject) -> Vec<LdapPartialAttribute> {
    group
        .attributes
        .iter()
        .map(|(name, vals)| {
            if name.eq_ignore_ascii_case("member") && vals.len() > MAX_VAL_RANGE {
                LdapPartialAttribute {
                    atype: format!("member;range=0-{}", MAX_VAL_RANGE - 1),
                    vals: vals[..MAX_VAL_RANGE].to_vec(),
                }
            } else {
                LdapPartialAttribute {
                    atype: name.clone(),
                    vals: vals.clone(),
                }
            }
        })
        .collect()
}

fn plain_attributes(object: &AdObject) -> Vec<LdapPartialAttribute> {
    object
        .attributes
        .iter()
        .map(|(name, vals)| LdapPartialAttribute {
            atype: name.clone(),
            vals: vals.clone(),
        })
        .collect()
}

async fn serve(socket: tokio::net::TcpStream, state: &State) {
    let mut framed = Framed::new(socket, LdapCodec::default());
    while let Some(Ok(msg)) = framed.next().await {
        let id = msg.msgid;
        let replies = match msg.op {
            LdapOp::BindRequest(req) => {
                let ok = match &req.cred {
                    ldap3_proto::proto::LdapBindCred::Simple(pw) => {
                        req.dn == BIND_DN && pw == BIND_PASSWORD
                    }
                    _ => false,
                };
                vec![LdapMsg {
                    msgid: id,
                    op: LdapOp::BindResponse(LdapBindResponse {
                        res: if ok {
                            result(LdapResultCode::Success, "")
                        } else {
                            result(
                                LdapResultCode::InvalidCredentials,
                                "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563",
                            )
                        },
                        saslcreds: None,
                    }),
                    ctrl: vec![],
                }]
            }
            LdapOp::SearchRequest(req)
                if req.scope == LdapSearchScope::Base && req.base.is_empty() =>
            {
                let mut controls = vec![b"1.2.840.113556.1.4.319".to_vec()];
                if state.fault == Fault::MalformedSyncControl {
                    controls.push(SYNC_REQUEST_OID.as_bytes().to_vec());
                }
                let root = AdObject::new("").with("supportedControl", controls);
                vec![
                    entry(id, "", plain_attributes(&root)),
                    LdapMsg {
                        msgid: id,
                        op: LdapOp::SearchResultDone(result(LdapResultCode::Success, "")),
                        ctrl: vec![],
                    },
                ]
            }
            LdapOp::SearchRequest(req) if req.scope == LdapSearchScope::Base => {
                range_search(id, &req.base, &req.attrs, state)
            }
            LdapOp::SearchRequest(req)
                if state.fault == Fault::MalformedSyncControl
                    && msg
                        .ctrl
                        .iter()
                        .any(|c| matches!(c, LdapControl::SyncRequest { .. })) =>
            {
                let first = state
                    .users
                    .first()
                    .map(|o| (o.dn.clone(), plain_attributes(o)));
                let mut out = Vec::new();
                if let Some((dn, attributes)) = first {
                    let mut e = entry(id, &dn, attributes);
                    e.ctrl = vec![LdapControl::Unknown {
                        oid: SYNC_STATE_OID.to_string(),
                        criticality: false,
                        // SEQUENCE { state add } without the entryUUID the RFC requires.
                        value: Some(vec![0x30, 0x03, 0x0a, 0x01, 0x01]),
                    }];
                    out.push(e);
                }
                let _ = req;
                out.push(LdapMsg {
                    msgid: id,
                    op: LdapOp::SearchResultDone(result(LdapResultCode::Success, "")),
                    ctrl: vec![],
                });
                out
            }
            LdapOp::SearchRequest(req) => {
                let page = msg.ctrl.iter().find_map(|c| match c {
                    LdapControl::SimplePagedResults { size, cookie } => {
                        Some((*size, cookie.clone()))
                    }
                    _ => None,
                });
                let is_users = req.base.eq_ignore_ascii_case(USERS_BASE);
                let collection = if is_users {
                    &state.users
                } else if req.base.eq_ignore_ascii_case(GROUPS_BASE) {
                    &state.groups
                } else {
                    let done = LdapMsg {
                        msgid: id,
                        op: LdapOp::SearchResultDone(result(
                            LdapResultCode::NoSuchObject,
                            "0000208D: NameErr: DSID-03100241, problem 2001 (NO_OBJECT)",
                        )),
                        ctrl: vec![],
                    };
                    if framed.send(done).await.is_err() {
                        return;
                    }
                    continue;
                };
                let Some((size, cookie)) = page else {
                    // AD without paging: at most 1000 entries, then sizeLimitExceeded.
                    let mut out: Vec<LdapMsg> = collection
                        .iter()
                        .take(1000)
                        .map(|o| entry(id, &o.dn, plain_attributes(o)))
                        .collect();
                    out.push(LdapMsg {
                        msgid: id,
                        op: LdapOp::SearchResultDone(result(
                            if collection.len() > 1000 {
                                LdapResultCode::SizeLimitExceeded
                            } else {
                                LdapResultCode::Success
                            },
                            "",
                        )),
                        ctrl: vec![],
                    });
                    for m in out {
                        if framed.send(m).await.is_err() {
                            return;
                        }
                    }
                    continue;
                };
                let offset: usize = std::str::from_utf8(&cookie)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let size = usize::try_from(size).unwrap_or(1000).clamp(1, 1000);
                let end = (offset + size).min(collection.len());
                let mut out = Vec::new();
                for object in &collection[offset..end] {
                    let attributes = if is_users {
                        plain_attributes(object)
                    } else {
                        group_attributes(object)
                    };
                    out.push(entry(id, &object.dn, attributes));
                }
                if is_users && state.fault == Fault::DropConnection && offset > 0 {
                    for m in out.into_iter().take(5) {
                        let _ = framed.send(m).await;
                    }
                    return; // the socket closes mid-search
                }
                if is_users && state.fault == Fault::Referral && offset == 0 {
                    out.push(LdapMsg {
                        msgid: id,
                        op: LdapOp::SearchResultReference(LdapSearchResultReference {
                            uris: vec!["ldap://emea.ad.test/OU=Users,DC=emea,DC=ad,DC=test".into()],
                        }),
                        ctrl: vec![],
                    });
                }
                let next = if end < collection.len() {
                    end.to_string().into_bytes()
                } else {
                    Vec::new()
                };
                let last = next.is_empty();
                out.push(LdapMsg {
                    msgid: id,
                    op: LdapOp::SearchResultDone(result(LdapResultCode::Success, "")),
                    ctrl: if is_users && last && state.fault == Fault::NoPagingControl {
                        vec![]
                    } else {
                        vec![LdapControl::SimplePagedResults {
                            size: 0,
                            cookie: next,
                        }]
                    },
                });
                out
            }
            LdapOp::UnbindRequest => return,
            _ => continue,
        };
        for m in replies {
            if framed.send(m).await.is_err() {
                return;
            }
        }
    }
}

/// Answers a base search for `member;range=LOW-*` on a group, as AD does.
fn range_search(id: i32, base: &str, attrs: &[String], state: &State) -> Vec<LdapMsg> {
    state.range_searches.fetch_add(1, Ordering::SeqCst);
    let done = |code| LdapMsg {
        msgid: id,
        op: LdapOp::SearchResultDone(result(code, "")),
        ctrl: vec![],
    };
    let Some(group) = state
        .groups
        .iter()
        .chain(state.users.iter())
        .find(|g| g.dn.eq_ignore_ascii_case(base))
    else {
        return vec![done(LdapResultCode::NoSuchObject)];
    };
    let members: &[Vec<u8>] = group
        .attributes
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("member"))
        .map(|(_, v)| v.as_slice())
        .unwrap_or(&[]);
    let low = attrs.iter().find_map(|a| {
        let lower = a.to_ascii_lowercase();
        let spec = lower.strip_prefix("member;range=")?;
        let (low, high) = spec.split_once('-')?;
        (high == "*").then(|| low.parse::<usize>().ok()).flatten()
    });
    let mut attributes = Vec::new();
    if let Some(low) = low {
        let skip = state.fault == Fault::DropRange;
        if !skip && low < members.len() {
            let end = (low + MAX_VAL_RANGE).min(members.len());
            let (name, values) = if end == members.len() {
                (format!("member;range={low}-*"), &members[low..end])
            } else if state.fault == Fault::ShortRange {
                (
                    format!("member;range={low}-{}", end - 1),
                    &members[low..low + 1000],
                )
            } else {
                (
                    format!("member;range={low}-{}", end - 1),
                    &members[low..end],
                )
            };
            attributes.push(LdapPartialAttribute {
                atype: name,
                vals: values.to_vec(),
            });
        }
    }
    vec![
        entry(id, &group.dn, attributes),
        done(LdapResultCode::Success),
    ]
}
