//! Scale benchmark (`cargo bench -p ftrack-emulator --bench scale`): loads 100,000 users
//! (plus 10,000 groups and 1,000,000 memberships unless `SCALE_SMALL=1`), pages through
//! them over HTTP exactly as a client would, and times a 10,000-create batch. Prints a
//! Markdown table for BENCHMARKS.md.

use ftrack_emulator::{EmulatorConfig, StateDump};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn post(addr: SocketAddr, body: &str) -> Value {
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!(
        "POST /api HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\nftrack-user: bench\r\nftrack-api-key: k\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("http response");
    serde_json::from_slice(&buf[split + 4..]).expect("json body")
}

fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// Page through `expr` with `offset N limit page`, following metadata.next.offset.
fn page_all(addr: SocketAddr, expr: &str, page: u64) -> (usize, usize, Duration, Duration) {
    let mut offset = Some(0u64);
    let (mut rows, mut requests) = (0usize, 0usize);
    let mut slowest = Duration::ZERO;
    let t = Instant::now();
    while let Some(o) = offset {
        let ops =
            json!([{"action": "query", "expression": format!("{expr} offset {o} limit {page}")}]);
        let t1 = Instant::now();
        let r = post(addr, &ops.to_string());
        slowest = slowest.max(t1.elapsed());
        requests += 1;
        rows += r[0]["data"].as_array().map(Vec::len).unwrap_or(0);
        offset = r[0]["metadata"]["next"]["offset"].as_u64();
    }
    (rows, requests, t.elapsed(), slowest)
}

fn main() {
    let small = std::env::var("SCALE_SMALL").is_ok_and(|v| v == "1");
    let users = 100_000usize;
    let (groups, memberships) = if small {
        (0, 0)
    } else {
        (10_000usize, 1_000_000usize)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // The store's own footprint, measured first while the heap is fresh.
    let footprint = {
        use ftrack_emulator::schema::entity;
        use ftrack_emulator::store::{Record, Store};
        let (u, g, m) = (
            entity("User").expect("User"),
            entity("Group").expect("Group"),
            entity("Membership").expect("Membership"),
        );
        let before = rss_mb().0;
        let t = Instant::now();
        let mut st = Store::new();
        for i in 0..users {
            let mut r = Record::new(u);
            r.insert("id", json!(format!("00000000-0000-4000-8000-{i:012}")));
            r.insert("username", json!(format!("user{i:06}")));
            r.insert("email", json!(format!("user{i}@studio.test")));
            ftrack_emulator::state::fill_defaults(u, &mut r);
            st.insert("User", r).expect("user");
        }
        for i in 0..groups {
            let mut r = Record::new(g);
            r.insert("id", json!(format!("10000000-0000-4000-8000-{i:012}")));
            r.insert("name", json!(format!("group{i:05}")));
            ftrack_emulator::state::fill_defaults(g, &mut r);
            st.insert("Group", r).expect("group");
        }
        for i in 0..memberships {
            let (uu, gg) = (i % users, (i / users + (i % users) * 7) % groups.max(1));
            let mut r = Record::new(m);
            r.insert("id", json!(format!("20000000-0000-4000-8000-{i:012}")));
            r.insert(
                "user_id",
                json!(format!("00000000-0000-4000-8000-{uu:012}")),
            );
            r.insert(
                "group_id",
                json!(format!("10000000-0000-4000-8000-{gg:012}")),
            );
            st.insert("Membership", r).expect("membership");
        }
        let took = t.elapsed();
        let mb = rss_mb().0 - before;
        drop(st);
        format!(
            "| store footprint (same data inserted directly, no JSON) | {:.2} s | {:.0} MB |",
            took.as_secs_f64(),
            mb
        )
    };

    let mut dump = StateDump::default();
    dump.entities.insert(
        "User".into(),
        (0..users)
            .map(|i| {
                json!({"id": format!("00000000-0000-4000-8000-{i:012}"), "username": format!("user{i:06}"),
                       "email": format!("user{i}@studio.test"), "first_name": "First", "last_name": format!("Last{i}"),
                       "is_active": i % 10 != 0})
            })
            .collect(),
    );
    dump.entities.insert(
        "Group".into(),
        (0..groups)
            .map(|g| json!({"id": format!("10000000-0000-4000-8000-{g:012}"), "name": format!("group{g:05}")}))
            .collect(),
    );
    dump.entities.insert(
        "Membership".into(),
        (0..memberships)
            .map(|m| {
                let u = m % users;
                let g = (m / users + u * 7) % groups.max(1);
                json!({"id": format!("20000000-0000-4000-8000-{m:012}"),
                       "user_id": format!("00000000-0000-4000-8000-{u:012}"),
                       "group_id": format!("10000000-0000-4000-8000-{g:012}")})
            })
            .collect(),
    );
    let (rss_dump, _) = rss_mb();
    let t = Instant::now();
    let emu = rt
        .block_on(ftrack_emulator::spawn(
            EmulatorConfig::new("bench", "k").state(dump),
        ))
        .expect("spawn");
    let load = t.elapsed();
    let (rss_loaded, _) = rss_mb();
    let addr = emu.addr();

    let mut rows = vec![footprint];
    rows.push(format!(
        "| load state ({users} users, {groups} groups, {memberships} memberships) | {:.2} s | RSS {:.0} MB with the JSON state built, {:.0} MB after load (freed JSON stays in the allocator) |",
        load.as_secs_f64(),
        rss_dump,
        rss_loaded
    ));
    for (label, expr, page) in [
        (
            "page all users",
            "select id, username, email, first_name, last_name, is_active from User",
            1000,
        ),
        (
            "page all users, page 500",
            "select id, username, email, is_active from User",
            500,
        ),
        (
            "page users with filter",
            "select id, username from User where is_active is True and email like '%@studio.test'",
            1000,
        ),
        (
            "page users ordered by username desc",
            "select id, username from User order by username desc",
            1000,
        ),
    ] {
        let (n, reqs, total, slowest) = page_all(addr, expr, page);
        rows.push(format!(
            "| {label}: {n} rows in {reqs} requests | {:.2} s | {:.1} ms/page avg, slowest {:.1} ms |",
            total.as_secs_f64(),
            total.as_secs_f64() * 1000.0 / reqs as f64,
            slowest.as_secs_f64() * 1000.0
        ));
    }
    if memberships > 0 {
        let (n, reqs, total, slowest) =
            page_all(addr, "select id, user_id, group_id from Membership", 5000);
        rows.push(format!(
            "| page all memberships: {n} rows in {reqs} requests (limit 5000) | {:.2} s | {:.1} ms/page avg, slowest {:.1} ms |",
            total.as_secs_f64(),
            total.as_secs_f64() * 1000.0 / reqs as f64,
            slowest.as_secs_f64() * 1000.0
        ));
    }
    // Indexed lookups.
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("00000000-0000-4000-8000-{:012}", i * 97))
        .collect();
    let t = Instant::now();
    let r = post(addr, &json!([{"action": "query", "expression": format!("select username from User where id in ({}) limit 1000", ids.join(","))}]).to_string());
    rows.push(format!(
        "| `id in (1000 ids)` lookup: {} rows | {:.1} ms | primary-key index |",
        r[0]["data"].as_array().map(Vec::len).unwrap_or(0),
        t.elapsed().as_secs_f64() * 1000.0
    ));
    let t = Instant::now();
    for i in 0..100 {
        post(addr, &json!([{"action": "query", "expression": format!("select id from User where username is \"user{:06}\"", i * 991)}]).to_string());
    }
    rows.push(format!(
        "| 100 × `username is X` queries | {:.1} ms | {:.2} ms each (username index, one request each) |",
        t.elapsed().as_secs_f64() * 1000.0,
        t.elapsed().as_secs_f64() * 10.0
    ));
    // 10,000 creates in one batch.
    let ops: Vec<Value> = (0..10_000)
        .map(|i| json!({"action": "create", "entity_type": "User", "entity_key": [format!("30000000-0000-4000-8000-{i:012}")],
                         "entity_data": {"__entity_type__": "User", "id": format!("30000000-0000-4000-8000-{i:012}"),
                                         "username": format!("new{i:05}"), "is_active": true, "resource_type": "user"}}))
        .collect();
    let body = Value::Array(ops).to_string();
    let t = Instant::now();
    let r = post(addr, &body);
    let took = t.elapsed();
    assert_eq!(
        r.as_array().map(Vec::len),
        Some(10_000),
        "creates failed: {r}"
    );
    rows.push(format!(
        "| batch of 10,000 User creates (one request, {:.1} MB) | {:.2} s | {:.0} creates/s |",
        body.len() as f64 / 1e6,
        took.as_secs_f64(),
        10_000.0 / took.as_secs_f64()
    ));
    let c = emu.counters();
    let (rss, hwm) = rss_mb();
    rows.push(format!(
        "| requests served | {} | RSS {:.0} MB, peak {:.0} MB |",
        c.requests, rss, hwm
    ));
    rt.block_on(emu.shutdown());

    println!("| measurement | time | notes |\n|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
